//! One-off sync: push what the server lacks, pull what this device lacks, return what moved.

use crate::database::Database;
use crate::error::Result;
use crate::runtime::runtime;

/// What one sync moved.
#[derive(Clone, Debug, Default, PartialEq, uniffi::Record)]
pub struct SyncReport {
    /// Whether both sides ended with the same state digest.
    pub in_sync: bool,
    /// The common digest (hex), when in sync.
    pub digest: Option<String>,
    /// Changes received and merged here.
    pub received: u64,
    /// Changes sent and acknowledged by the server.
    pub sent: u64,
    /// Local changes the server refused: they stay here, and `reject_reasons` says why.
    pub rejected: u64,
    /// The server's reasons for refusing, each once.
    pub reject_reasons: Vec<String>,
    /// Blobs received and stored.
    pub blobs_received: u64,
    /// Blobs the server stored from here.
    pub blobs_sent: u64,
    /// Bytes received over the wire.
    pub bytes_received: u64,
    /// Bytes sent over the wire.
    pub bytes_sent: u64,
}

impl From<weft_client::SyncReport> for SyncReport {
    fn from(report: weft_client::SyncReport) -> SyncReport {
        SyncReport {
            in_sync: report.in_sync,
            digest: report.digest.map(|d| d.to_string()),
            received: report.received,
            sent: report.sent,
            rejected: report.rejected,
            reject_reasons: report.reject_reasons,
            blobs_received: report.blobs_received,
            blobs_sent: report.blobs_sent,
            bytes_received: report.bytes_received,
            bytes_sent: report.bytes_sent,
        }
    }
}

#[uniffi::export]
impl Database {
    /// Syncs with the server database at `url` (`ws://HOST:PORT/v1/sync/NAME`, or `wss://`)
    /// once, with `token` if the server wants one, and returns what moved. Blocks until both
    /// sides are caught up (it runs on Weft's own threads; from a UI thread, call it from a
    /// background one). Reads and writes of this database go on meanwhile.
    pub fn sync_once(&self, url: String, token: Option<String>) -> Result<SyncReport> {
        self.opened()?;
        let target = self.target(url, token);
        let path = self.file().to_owned();
        let report = runtime()
            .block_on(async move { weft_client::sync_once(&path, &target, |_, _| {}).await })?;
        Ok(report.into())
    }
}
