//! Reading pack files with a size cap, and the pack version: a digest of every file read.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::error::{LineIndex, LoadError, LoadErrorKind};

/// Why a file could not be read.
pub(crate) enum ReadError {
    Io(io::Error),
    TooLarge(usize),
}

impl ReadError {
    /// A load error for the file `what` (e.g. "key file `keys/a.jwks`"), reported at `path`.
    pub(crate) fn into_load_error(
        self,
        path: &Path,
        location: Option<crate::Location>,
        what: &str,
    ) -> LoadError {
        match self {
            ReadError::Io(e) => LoadError::new(
                LoadErrorKind::Io,
                path,
                location,
                format!("cannot read {what}: {}", describe_io(&e)),
            ),
            ReadError::TooLarge(n) => LoadError::new(
                LoadErrorKind::TooLarge,
                path,
                location,
                format!("{what} is larger than {n} bytes"),
            ),
        }
    }
}

/// An I/O error in lowercase words.
pub(crate) fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "not found".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::IsADirectory => "is a directory".to_owned(),
        _ => {
            let text = e.to_string();
            let mut chars = text.chars();
            chars.next().map_or(text.clone(), |c| {
                c.to_lowercase().chain(chars).collect::<String>()
            })
        }
    }
}

/// Every file the pack read, by path, so the version covers exactly what was used.
#[derive(Default)]
pub(crate) struct FileLog {
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl FileLog {
    /// Reads at most `limit` bytes of `path` (more is an error) and remembers the contents.
    pub(crate) fn read(&mut self, path: &Path, limit: usize) -> Result<Vec<u8>, ReadError> {
        let bytes = read_capped(path, limit)?;
        self.files.insert(path.to_path_buf(), bytes.clone());
        Ok(bytes)
    }

    /// Lowercase hex SHA-256 over every file read, sorted by path relative to `dir`: for each,
    /// the path's length (8 bytes, big-endian), the path, the contents' length, the contents.
    pub(crate) fn version(&self, dir: &Path) -> String {
        let mut entries: Vec<(String, &[u8])> = self
            .files
            .iter()
            .map(|(p, b)| (relative_name(dir, p), b.as_slice()))
            .collect();
        entries.sort();
        let mut hash = Sha256::new();
        for (name, bytes) in entries {
            hash.update((name.len() as u64).to_be_bytes());
            hash.update(name.as_bytes());
            hash.update((bytes.len() as u64).to_be_bytes());
            hash.update(bytes);
        }
        hash.finalize().iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

fn relative_name(dir: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(dir).unwrap_or(path);
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

fn read_capped(path: &Path, limit: usize) -> Result<Vec<u8>, ReadError> {
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if meta.is_dir() {
        return Err(ReadError::Io(io::Error::from(io::ErrorKind::IsADirectory)));
    }
    if meta.len() > limit as u64 {
        return Err(ReadError::TooLarge(limit));
    }
    let mut bytes = Vec::new();
    let cap = (limit as u64).saturating_add(1);
    file.take(cap)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() > limit {
        return Err(ReadError::TooLarge(limit));
    }
    Ok(bytes)
}

/// The text of a file that must be UTF-8, or an error located at the first bad byte.
pub(crate) fn utf8(bytes: Vec<u8>, path: &Path) -> Result<String, LoadError> {
    String::from_utf8(bytes).map_err(|e| {
        let good = e
            .as_bytes()
            .get(..e.utf8_error().valid_up_to())
            .unwrap_or_default();
        let text = std::str::from_utf8(good).unwrap_or_default();
        let at = LineIndex::new(text).locate(text.len());
        LoadError::new(LoadErrorKind::Io, path, Some(at), "file is not valid UTF-8")
    })
}
