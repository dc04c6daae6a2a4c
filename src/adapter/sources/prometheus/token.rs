//! The bearer token sent to Prometheus, from a file that is replaced while the adapter runs.
//!
//! A projected service-account token is rewritten by the kubelet well before it expires (an
//! atomic `..data` symlink swap), and a token kept from start would be refused by whatever
//! guards Prometheus (kube-rbac-proxy, an OAuth proxy) once it does. So the file's version
//! (inode, modification time and length) is checked before every query and the token re-read
//! when it changed. A file that turns unreadable or empty keeps the last good token in use, with a
//! warning, until it changes again.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use reqwest::header::HeaderValue;

/// What tells one version of the file from the next without reading it. The inode changes with
/// every kubelet update (a new file each time), the time and length with a rewrite in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileVersion {
    device: u64,
    inode: u64,
    modified: SystemTime,
    len: u64,
}

fn version_of(path: &Path) -> Option<FileVersion> {
    let metadata = std::fs::metadata(path).ok()?;
    Some(FileVersion {
        device: metadata.dev(),
        inode: metadata.ino(),
        modified: metadata.modified().ok()?,
        len: metadata.len(),
    })
}

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the token file is empty")]
    Empty { path: PathBuf },
    #[error("{path}: not a usable token (it must be visible ASCII)")]
    Unusable { path: PathBuf },
}

/// `Authorization: Bearer …` from the file's contents, surrounding whitespace trimmed.
fn read_header(path: &Path) -> Result<HeaderValue, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenError::Empty {
            path: path.to_path_buf(),
        });
    }
    let mut header =
        HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| TokenError::Unusable {
            path: path.to_path_buf(),
        })?;
    header.set_sensitive(true);
    Ok(header)
}

struct Current {
    header: HeaderValue,
    /// The version last read, or last found unusable.
    version: Option<FileVersion>,
}

/// A bearer token file, re-read when it changes.
pub(crate) struct TokenFile {
    path: PathBuf,
    current: Mutex<Current>,
}

impl TokenFile {
    /// Reads the token now: a file unreadable or empty at start is an error.
    pub fn open(path: &Path) -> Result<TokenFile, TokenError> {
        let version = version_of(path);
        let header = read_header(path)?;
        Ok(TokenFile {
            path: path.to_path_buf(),
            current: Mutex::new(Current { header, version }),
        })
    }

    /// The `Authorization` header for the next request. Costs one `stat` of a small local file
    /// (a projected volume); the file is read only when it changed.
    pub fn header(&self) -> HeaderValue {
        let version = version_of(&self.path);
        // A poisoned lock only means a panic elsewhere mid-update of two plain fields.
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if version.is_some() && version != current.version {
            current.version = version;
            match read_header(&self.path) {
                Ok(header) => {
                    if header != current.header {
                        tracing::info!(file = %self.path.display(), "Prometheus bearer token re-read");
                    }
                    current.header = header;
                }
                Err(error) => {
                    tracing::warn!(%error, "Prometheus bearer token unusable; keeping the last one");
                }
            }
        }
        current.header.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &TokenFile) -> String {
        token.header().to_str().expect("ascii").to_string()
    }

    /// Replaces `dir/token` the way the kubelet updates a projected volume: the new contents in
    /// a fresh directory, then an atomic rename of the `..data` symlink.
    fn kubelet_writes(dir: &Path, generation: u32, contents: &str) {
        let data = dir.join(format!("..{generation}"));
        std::fs::create_dir(&data).expect("dir");
        std::fs::write(data.join("token"), contents).expect("token");
        let link = dir.join("..data_tmp");
        std::os::unix::fs::symlink(data.file_name().expect("name"), &link).expect("symlink");
        std::fs::rename(&link, dir.join("..data")).expect("swap");
    }

    #[test]
    fn follows_a_projected_token_through_rotations_and_keeps_the_last_good_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        kubelet_writes(dir.path(), 1, "first\n");
        std::os::unix::fs::symlink("..data/token", dir.path().join("token")).expect("symlink");
        let token = TokenFile::open(&dir.path().join("token")).expect("readable");
        assert_eq!(bearer(&token), "Bearer first");

        kubelet_writes(dir.path(), 2, "second");
        assert_eq!(bearer(&token), "Bearer second");

        // emptied or gone: the last good token stays in use
        kubelet_writes(dir.path(), 3, "  \n");
        assert_eq!(bearer(&token), "Bearer second");
        std::fs::remove_file(dir.path().join("..data")).expect("remove");
        assert_eq!(bearer(&token), "Bearer second");

        kubelet_writes(dir.path(), 4, "third");
        assert_eq!(bearer(&token), "Bearer third");
    }

    #[test]
    fn refuses_an_unusable_file_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        let missing = TokenFile::open(&path).err().expect("missing file refused");
        assert!(format!("{missing:#}").contains("token"), "{missing:#}");
        std::fs::write(&path, "\n").expect("write");
        let empty = TokenFile::open(&path).err().expect("empty file refused");
        assert!(format!("{empty:#}").contains("empty"), "{empty:#}");
        std::fs::write(&path, "line\nbreak").expect("write");
        assert!(
            TokenFile::open(&path).is_err(),
            "a newline inside is not a header value"
        );
    }

    #[test]
    fn the_header_is_marked_sensitive_so_it_is_never_logged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "secret").expect("write");
        let token = TokenFile::open(&path).expect("readable");
        assert!(token.header().is_sensitive());
        assert!(!format!("{:?}", token.header()).contains("secret"));
    }
}
