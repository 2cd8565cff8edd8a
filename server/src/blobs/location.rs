//! The `--blobs URL` of a server: which object store holds the bytes, checked at start-up.

use crate::limits::BLOBS_URL_BYTES_MAX;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Makes ring rustls's process-wide cryptography (once; later calls do nothing). The S3
/// client's TLS is built without a provider of its own, so that aws-lc's C build stays out
/// of the dependencies; call this before building an S3 client.
pub fn install_tls_provider() {
    // An error means a provider is installed already: fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where a server's blob bytes live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobsUrl {
    /// A local directory (`file:///ABSOLUTE/DIR`, or a plain path), created if missing.
    Local(PathBuf),
    /// An S3 bucket, or a bucket of an S3-compatible server (`s3://BUCKET/PREFIX`); the
    /// credentials, region and endpoint come from the `AWS_*` environment variables.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix inside it, without leading or trailing `/` (may be empty).
        prefix: String,
    },
}

/// A `--blobs` URL that cannot be used, or a store that cannot be set up from it.
#[derive(Debug, thiserror::Error)]
pub enum BlobsUrlError {
    /// The text is not a URL this server knows.
    #[error(
        "--blobs {url:?}: {reason} (expected file:///DIR, a directory path, or s3://BUCKET/PREFIX)"
    )]
    Malformed {
        /// The text given (cut to [`BLOBS_URL_BYTES_MAX`]).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The local directory cannot be made or used.
    #[error("blob directory {}: {source}", path.display())]
    LocalDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `object_store` refused the settings (a missing region, a bad endpoint URL, ...).
    #[error("blob store {url}: {message}")]
    Store {
        /// The store's URL.
        url: String,
        /// What `object_store` said.
        message: String,
    },
}

impl BlobsUrl {
    /// The default: `DATA/blobs`.
    pub fn default_in(data_dir: &Path) -> BlobsUrl {
        BlobsUrl::Local(data_dir.join("blobs"))
    }

    /// Parses `file:///DIR`, a plain directory path (no `scheme://`), or `s3://BUCKET[/PREFIX]`
    /// (`s3a://` too).
    pub fn parse(text: &str) -> Result<BlobsUrl, BlobsUrlError> {
        let malformed = |reason: &str| BlobsUrlError::Malformed {
            url: text.chars().take(BLOBS_URL_BYTES_MAX).collect(),
            reason: reason.to_owned(),
        };
        if text.len() > BLOBS_URL_BYTES_MAX {
            return Err(malformed("too long"));
        }
        if text.trim().is_empty() {
            return Err(malformed("empty"));
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            if text.contains(':') && !text.starts_with(['/', '.']) {
                return Err(malformed("not a URL nor a path"));
            }
            return Ok(BlobsUrl::Local(PathBuf::from(text)));
        };
        match scheme {
            "file" => {
                if !rest.starts_with('/') {
                    return Err(malformed(
                        "a file URL needs an absolute path: file:///DIR (three slashes)",
                    ));
                }
                if rest.contains(['?', '#']) {
                    return Err(malformed("a file URL takes no query or fragment"));
                }
                Ok(BlobsUrl::Local(PathBuf::from(rest)))
            }
            "s3" | "s3a" => {
                if rest.contains(['?', '#', '@']) {
                    return Err(malformed(
                        "an s3 URL takes no query, fragment or credentials (use AWS_* variables)",
                    ));
                }
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if !is_bucket_name(bucket) {
                    return Err(malformed(
                        "no valid bucket name (3 to 63 lowercase letters, digits, '.' or '-')",
                    ));
                }
                let prefix = prefix.trim_matches('/');
                let valid_prefix = prefix.split('/').all(|part| {
                    prefix.is_empty() || (!part.is_empty() && part != "." && part != "..")
                });
                if !valid_prefix {
                    return Err(malformed("the prefix has an empty, '.' or '..' segment"));
                }
                Ok(BlobsUrl::S3 {
                    bucket: bucket.to_owned(),
                    prefix: prefix.to_owned(),
                })
            }
            other => Err(malformed(&format!(
                "unsupported scheme {:?}",
                other.chars().take(32).collect::<String>()
            ))),
        }
    }

    /// The same, with a relative local path made relative to `base` (a config file's
    /// directory).
    pub fn relative_to(self, base: &Path) -> BlobsUrl {
        match self {
            BlobsUrl::Local(path) if path.is_relative() => BlobsUrl::Local(base.join(path)),
            other => other,
        }
    }

    /// The object store and the key prefix under which the databases' directories go.
    pub(crate) fn open_store(&self) -> Result<(Arc<dyn ObjectStore>, ObjectPath), BlobsUrlError> {
        match self {
            BlobsUrl::Local(dir) => {
                let local_dir = |source| BlobsUrlError::LocalDir {
                    path: dir.clone(),
                    source,
                };
                std::fs::create_dir_all(dir).map_err(local_dir)?;
                let store = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| BlobsUrlError::Store {
                        url: self.to_string(),
                        message: e.to_string(),
                    })?
                    // A published blob survives a crash: the listing already says we hold it.
                    .with_fsync(true);
                Ok((Arc::new(store), ObjectPath::default()))
            }
            BlobsUrl::S3 { bucket, prefix } => {
                install_tls_provider();
                let store = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|e| BlobsUrlError::Store {
                        url: self.to_string(),
                        message: e.to_string(),
                    })?;
                let prefix = ObjectPath::parse(prefix).map_err(|e| BlobsUrlError::Malformed {
                    url: self.to_string(),
                    reason: e.to_string(),
                })?;
                Ok((Arc::new(store), prefix))
            }
        }
    }
}

/// S3's rule for bucket names, loosely: 3 to 63 lowercase letters, digits, `.` and `-`,
/// starting and ending with a letter or digit.
fn is_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&bytes.len())
        && edge(bytes.first())
        && edge(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
}

impl fmt::Display for BlobsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobsUrl::Local(dir) if dir.is_absolute() => write!(f, "file://{}", dir.display()),
            BlobsUrl::Local(dir) => write!(f, "{}", dir.display()),
            BlobsUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            BlobsUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_directory_or_a_bucket_and_nothing_else() {
        assert_eq!(
            BlobsUrl::parse("file:///srv/blobs").unwrap(),
            BlobsUrl::Local("/srv/blobs".into())
        );
        assert_eq!(
            BlobsUrl::parse("./blobs").unwrap(),
            BlobsUrl::Local("./blobs".into())
        );
        assert_eq!(
            BlobsUrl::parse("s3://my-bucket/weft/prod/").unwrap(),
            BlobsUrl::S3 {
                bucket: "my-bucket".into(),
                prefix: "weft/prod".into()
            }
        );
        assert_eq!(
            BlobsUrl::parse("s3://my-bucket").unwrap().to_string(),
            "s3://my-bucket"
        );
        for bad in [
            "",
            "s3://",
            "s3:///prefix",
            "s3://UPPER/x",
            "s3://b/../x",
            "s3://key:secret@bucket/x",
            "file://relative/dir",
            "gs://bucket",
            "http://example.com/x",
            "s3:bucket",
        ] {
            let error = BlobsUrl::parse(bad).unwrap_err().to_string();
            assert!(error.starts_with("--blobs"), "{bad}: {error}");
        }
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let url = BlobsUrl::parse("blobs")
            .unwrap()
            .relative_to(Path::new("/etc/weft"));
        assert_eq!(url, BlobsUrl::Local("/etc/weft/blobs".into()));
        let s3 = BlobsUrl::parse("s3://bucket/p").unwrap();
        assert_eq!(s3.clone().relative_to(Path::new("/x")), s3);
    }
}
