//! Why the sidecar could not start, reload, run or stop: [`ServeError`]. Its `Display` is the
//! message `custody serve` prints and the decision log records.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use custody_policy::LoadError;

/// Why a lifecycle step of the sidecar ([`start`](crate::start), [`run`](crate::run),
/// [`Running::reload`](crate::Running::reload), [`Running::shutdown`](crate::Running::shutdown))
/// failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// The serve options are unusable (an empty `--audience`, a zero limit, a bad header name):
    /// the message says which.
    Options(String),
    /// The pack did not load at start: every located error (file:line:col), in order.
    Pack {
        /// The pack directory.
        dir: PathBuf,
        /// The loader's errors.
        errors: Vec<LoadError>,
    },
    /// A reload's pack did not load; the pack in force keeps serving.
    Reload(Vec<LoadError>),
    /// A listener could not bind its address.
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Whether it is the metrics endpoint (else the gRPC listener).
        metrics: bool,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime could not start.
    Runtime(std::io::Error),
    /// An I/O error outside the above (a bound listener's local address).
    Io(std::io::Error),
    /// A task of the sidecar (the pack loader, the server) panicked or was cancelled.
    Task {
        /// Which task.
        task: &'static str,
        /// The join error's text.
        message: String,
    },
    /// The gRPC server stopped with an error.
    Server(tonic::transport::Error),
}

/// Load errors, one after the other, as the sidecar has always printed them.
fn joined(errors: &[LoadError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Options(m) => f.write_str(m),
            ServeError::Pack { dir, errors } => write!(
                f,
                "cannot load the pack `{}`: {}",
                dir.display(),
                joined(errors)
            ),
            ServeError::Reload(errors) => f.write_str(&joined(errors)),
            ServeError::Listen {
                addr,
                metrics: false,
                source,
            } => write!(f, "cannot listen on `{addr}`: {source}"),
            ServeError::Listen {
                addr,
                metrics: true,
                source,
            } => write!(f, "cannot listen on `{addr}` for metrics: {source}"),
            ServeError::Runtime(e) => write!(f, "cannot start the runtime: {e}"),
            ServeError::Io(e) => write!(f, "{e}"),
            ServeError::Task { task, message } => write!(f, "{task} failed: {message}"),
            ServeError::Server(e) => write!(f, "gRPC server failed: {e}"),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeError::Listen { source, .. } => Some(source),
            ServeError::Runtime(e) | ServeError::Io(e) => Some(e),
            ServeError::Server(e) => Some(e),
            ServeError::Pack { errors, .. } | ServeError::Reload(errors) => errors
                .first()
                .map(|e| e as &(dyn std::error::Error + 'static)),
            ServeError::Options(_) | ServeError::Task { .. } => None,
        }
    }
}
