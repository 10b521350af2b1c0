//! What every command shares: loading its pack, reading its input, its exit statuses.

use std::io::Read as _;
use std::path::Path;

use custody_policy::PolicyPack;
use custody_verifier::Limits;

/// Exit statuses: 0 allow (or success), 1 deny (or a failed test), 2 unusable input or pack.
pub(crate) const EXIT_DENY: u8 = 1;
pub(crate) const EXIT_UNUSABLE: u8 = 2;

/// Loads a pack, printing warnings to stderr; every load error becomes one line of the message.
pub(crate) fn load_pack(dir: &Path, quiet: bool) -> Result<PolicyPack, String> {
    match PolicyPack::load(dir, &Limits::default()) {
        Ok(loaded) => {
            if !quiet {
                for w in &loaded.warnings {
                    eprintln!("custody: warning: {w}");
                }
            }
            Ok(loaded.pack)
        }
        Err(errors) => Err(errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")),
    }
}

/// Fetches every remote key source of the verifier's pack once, synchronously, into its key
/// store; returns each source's state (empty when the pack names none).
pub(crate) fn fetch_sources(
    verifier: &custody_verifier::Verifier,
) -> Vec<custody_sources::SourceStatus> {
    let sources = custody_sources::KeySources::new(
        verifier.pack(),
        std::sync::Arc::clone(verifier.key_store()),
        None,
    );
    if sources.is_empty() {
        return Vec::new();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("custody: warning: cannot start the runtime that fetches key sources: {e}");
            return sources.status();
        }
    };
    runtime.block_on(sources.refresh_all());
    sources.status()
}

/// Prints a warning for each source whose fetch failed.
pub(crate) fn warn_sources(status: &[custody_sources::SourceStatus]) {
    for s in status {
        if let Some(e) = &s.last_error {
            eprintln!(
                "custody: warning: key source `{}` of `{}`: {e}",
                s.url, s.domain
            );
        }
    }
}

pub(crate) fn read_input(path: &str, limit: usize) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let taken = if path == "-" {
        std::io::stdin()
            .take(limit as u64 + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit as u64 + 1).read_to_end(&mut bytes))
    };
    taken.map_err(|e| format!("{path}: {e}"))?;
    Ok(bytes)
}
