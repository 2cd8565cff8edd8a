//! The server's signing secret: given, read from a file, or generated into the data directory.

use rand::rngs::OsRng;
use rand::TryRngCore;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The shortest secret accepted, in bytes: HS256 with less is guessable.
pub const SECRET_BYTES_MIN: usize = 16;

/// Random bytes in a generated secret (written as twice as many hex characters).
pub const GENERATED_SECRET_BYTES: usize = 32;

/// The file a server keeps its generated secret in, inside its data directory.
pub const SECRET_FILE_NAME: &str = "auth-secret";

/// The key tokens are signed and checked with (HS256). Its bytes are the text as given;
/// a secret file's text with surrounding whitespace (the final newline) removed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

/// What can go wrong with a secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Too short to be safe.
    #[error("the auth secret is {0} bytes long; use at least {SECRET_BYTES_MIN}")]
    TooShort(usize),
    /// The secret file could not be read or written.
    #[error("auth secret file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The operating system's random source failed.
    #[error("generating an auth secret: {0}")]
    Random(String),
}

impl Secret {
    /// A secret from its text.
    pub fn new(text: &str) -> Result<Secret, SecretError> {
        if text.len() < SECRET_BYTES_MIN {
            return Err(SecretError::TooShort(text.len()));
        }
        Ok(Secret(text.as_bytes().to_vec()))
    }

    /// A new random secret: [`GENERATED_SECRET_BYTES`] from the operating system, as hex.
    pub fn generate() -> Result<Secret, SecretError> {
        let mut bytes = [0u8; GENERATED_SECRET_BYTES];
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| SecretError::Random(e.to_string()))?;
        Ok(Secret(hex::encode(bytes).into_bytes()))
    }

    /// The secret in `path` (surrounding whitespace removed). Warns in the log when others
    /// than the owner may read the file.
    pub fn read_file(path: &Path) -> Result<Secret, SecretError> {
        let file_error = |source| SecretError::File {
            path: path.to_owned(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(file_error)?;
        warn_if_shared(path);
        Secret::new(text.trim())
    }

    /// The secret in `path`, or, when there is no such file, a new one generated into it
    /// (mode 0600 on Unix; the directory is created, mode 0700, if missing). Returns whether
    /// it was generated.
    pub fn load_or_generate(path: &Path) -> Result<(Secret, bool), SecretError> {
        let file_error = |source| SecretError::File {
            path: path.to_owned(),
            source,
        };
        if path.exists() {
            return Ok((Secret::read_file(path)?, false));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(file_error)?;
        }
        let secret = Secret::generate()?;
        let mut file = match new_private_file(path) {
            Ok(file) => file,
            // Another process generated it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Ok((Secret::read_file(path)?, false));
            }
            Err(e) => return Err(file_error(e)),
        };
        file.write_all(&secret.0)
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(file_error)?;
        Ok((secret, true))
    }

    /// The key's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Creates `dir` and its missing parents, the new ones readable by the owner only.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn new_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                "the auth secret file {} can be read by other users (mode {mode:o}); run: chmod 600 {}",
                path.display(),
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(
            Secret::new("short"),
            Err(SecretError::TooShort(5))
        ));
        assert!(Secret::new("0123456789abcdef").is_ok());
    }

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join(SECRET_FILE_NAME);
        let (first, generated) = Secret::load_or_generate(&path).unwrap();
        assert!(generated);
        assert_eq!(first.as_bytes().len(), GENERATED_SECRET_BYTES * 2);
        let (again, generated) = Secret::load_or_generate(&path).unwrap();
        assert!(!generated);
        assert_eq!(first, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let secret = Secret::new("0123456789abcdefXYZ").unwrap();
        assert!(!format!("{secret:?}").contains("XYZ"));
    }
}
