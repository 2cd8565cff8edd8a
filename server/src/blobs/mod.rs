//! Where a server keeps blob bytes: an `object_store` (a local directory by default, S3 or
//! an S3-compatible server by URL), one [`ObjectBlobs`] per database under its own prefix.
//!
//! ```text
//! --blobs URL ──► BlobsUrl ──► BlobBackend (one ObjectStore, one runtime handle)
//!                                  │ for_database(name)
//!                                  ▼
//!                ObjectBlobs: {prefix}/{database}/{hh}/{hash}, staging in DATA/staging/{database}
//! ```
//!
//! [`ObjectBlobs`] implements the blocking [`weft_core::blobs::BlobStore`] over the async
//! store by blocking on a tokio [`Handle`]: its methods must run outside the runtime's
//! asynchronous context (on tokio's blocking pool, in `spawn_blocking`, or on a plain thread).

mod location;
mod object;

pub use location::{install_tls_provider, BlobsUrl, BlobsUrlError};
pub use object::{ObjectBlobs, UploadLimits};

use crate::names::DatabaseName;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::runtime::Handle;

/// The directory under the data directory where partly received blobs wait, one
/// subdirectory per database: `DATA/staging`.
pub fn staging_root(data_dir: &Path) -> PathBuf {
    data_dir.join("staging")
}

/// One object store for every database of a server, and what each database's
/// [`ObjectBlobs`] needs besides its name.
#[derive(Clone, Debug)]
pub struct BlobBackend {
    url: BlobsUrl,
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    staging_root: PathBuf,
    handle: Handle,
    limits: UploadLimits,
}

impl BlobBackend {
    /// Opens the store `url` names (an S3 store reads its credentials, region and endpoint
    /// from the `AWS_*` environment variables; nothing is contacted yet) for the server whose
    /// data directory is `data_dir`. A local directory is created if missing. `handle` is the
    /// runtime the store's requests run on.
    pub fn open(
        url: &BlobsUrl,
        data_dir: &Path,
        handle: Handle,
    ) -> Result<BlobBackend, BlobsUrlError> {
        let (store, prefix) = url.open_store()?;
        Ok(BlobBackend {
            url: url.clone(),
            store,
            prefix,
            staging_root: staging_root(data_dir),
            handle,
            limits: UploadLimits::default(),
        })
    }

    /// The URL it was opened from.
    pub fn url(&self) -> &BlobsUrl {
        &self.url
    }

    /// The store of database `name`: its objects under `{prefix}/{name}/`, its partial
    /// blobs in `DATA/staging/{name}` (created if missing).
    pub fn for_database(&self, name: &DatabaseName) -> io::Result<ObjectBlobs> {
        let staging = self.staging_root.join(name.as_str());
        std::fs::create_dir_all(&staging)?;
        let blobs = ObjectBlobs::new(
            self.store.clone(),
            self.prefix.clone().join(name.as_str()),
            staging,
            self.handle.clone(),
            format!("{}/{name}", self.url),
        )
        .with_limits(self.limits);
        Ok(match &self.url {
            BlobsUrl::Local(dir) => blobs.with_local_root(dir.clone()),
            BlobsUrl::S3 { .. } => blobs,
        })
    }
}
