//! The databases a server has opened: one entry per name, made on first use, holding what
//! the connections to that database share — the notifier of its latest db_version, the store
//! of its blob bytes and the SQLite connections their steps borrow.

use crate::blobs::BlobBackend;
use crate::limits::DIRECTORY_ENTRIES_MAX;
use crate::limits::REPLICAS_OPEN_MAX;
use crate::names::{databases_dir, DatabaseName};
use crate::pool::ReplicaPool;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{watch, OnceCell};
use weft_core::blobs::BlobStore;
use weft_core::Replica;

/// One database, shared by its connections.
pub(crate) struct Database {
    name: DatabaseName,
    path: PathBuf,
    commits: watch::Sender<u64>,
    blobs: Arc<dyn BlobStore>,
    replicas: Arc<ReplicaPool>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("blobs", &self.blobs.describe())
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Its name.
    pub(crate) fn name(&self) -> &DatabaseName {
        &self.name
    }

    /// Its SQLite file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The store of its blob bytes (its methods block: call them on the blocking pool).
    pub(crate) fn blobs(&self) -> Arc<dyn BlobStore> {
        self.blobs.clone()
    }

    /// The connections its conversations borrow for each step.
    pub(crate) fn replicas(&self) -> Arc<ReplicaPool> {
        self.replicas.clone()
    }

    /// A receiver that wakes on each new commit (its value: the latest db_version).
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Tells every connection that the database reached `db_version`.
    pub(crate) fn committed(&self, db_version: u64) {
        self.commits.send_if_modified(|latest| {
            let newer = db_version > *latest;
            if newer {
                *latest = db_version;
            }
            newer
        });
    }
}

/// The databases of one data directory.
#[derive(Debug)]
pub(crate) struct Registry {
    data_dir: PathBuf,
    blobs: BlobBackend,
    databases: Mutex<HashMap<DatabaseName, Arc<OnceCell<Arc<Database>>>>>,
    /// Bumped each time a database is opened for the first time (possibly a new file), so
    /// that peer dialers follow it at once instead of at their next look at the directory.
    opened: watch::Sender<u64>,
}

impl Registry {
    /// An empty registry over `data_dir`, each database's blobs in `blobs`.
    pub(crate) fn new(data_dir: PathBuf, blobs: BlobBackend) -> Registry {
        Registry {
            data_dir,
            blobs,
            databases: Mutex::new(HashMap::new()),
            opened: watch::channel(0).0,
        }
    }

    /// The data directory.
    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A receiver that wakes each time a database is opened for the first time.
    pub(crate) fn subscribe_opened(&self) -> watch::Receiver<u64> {
        self.opened.subscribe()
    }

    /// The names of the databases in the data directory (`dbs/*.db` with a valid name),
    /// sorted, at most `max` of them (the first ones by name), and whether there were more.
    pub(crate) fn list(&self, max: usize) -> std::io::Result<(Vec<DatabaseName>, bool)> {
        list_databases(&databases_dir(&self.data_dir), max)
    }

    /// The database `name`, its file created (as an empty replica) on first use. Opening is
    /// blocking and runs on tokio's blocking pool; concurrent first uses open it once.
    pub(crate) async fn open(&self, name: &DatabaseName) -> Result<Arc<Database>, OpenError> {
        let cell = {
            let mut databases = self
                .databases
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            databases.entry(name.clone()).or_default().clone()
        };
        let database = cell
            .get_or_try_init(|| async {
                let path = name.file_in(&self.data_dir);
                let opened = path.clone();
                let backend = self.blobs.clone();
                let database = name.clone();
                let (db_version, blobs, first) = tokio::task::spawn_blocking(move || {
                    let replica = Replica::open(&opened).map_err(|e| OpenError(e.to_string()))?;
                    let db_version = replica.db_version().map_err(|e| OpenError(e.to_string()))?;
                    let blobs = backend
                        .for_database(&database)
                        .map_err(|e| OpenError(format!("blob staging directory: {e}")))?;
                    Ok::<_, OpenError>((db_version, Arc::new(blobs) as Arc<dyn BlobStore>, replica))
                })
                .await
                .map_err(|e| OpenError(e.to_string()))??;
                tracing::info!(database = %name, db_version, "opened database");
                self.opened.send_modify(|count| *count += 1);
                let (commits, _) = watch::channel(db_version);
                let replicas = Arc::new(ReplicaPool::new(&path, Some(first), REPLICAS_OPEN_MAX));
                Ok::<_, OpenError>(Arc::new(Database {
                    name: name.clone(),
                    path,
                    commits,
                    blobs,
                    replicas,
                }))
            })
            .await?;
        Ok(database.clone())
    }
}

impl Registry {
    /// Closes the spare SQLite connections no conversation used for `idle_for`. Blocking.
    pub(crate) fn close_idle_connections(&self, idle_for: std::time::Duration) -> usize {
        let databases: Vec<Arc<Database>> = self
            .databases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .filter_map(|cell| cell.get().cloned())
            .collect();
        let mut closed = 0;
        for database in databases {
            let idle = database.replicas.take_idle(idle_for);
            closed += idle.len();
            drop(idle);
        }
        closed
    }
}

/// The databases in `dir` (see [`Registry::list`]); none if it does not exist.
fn list_databases(dir: &Path, max: usize) -> std::io::Result<(Vec<DatabaseName>, bool)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Vec::new(), false))
        }
        Err(error) => return Err(error),
    };
    let mut names = std::collections::BTreeSet::new();
    for entry in entries.take(DIRECTORY_ENTRIES_MAX) {
        let file_name = entry?.file_name();
        let Some(name) = file_name.to_str().and_then(|f| f.strip_suffix(".db")) else {
            continue;
        };
        if let Ok(name) = DatabaseName::new(name) {
            names.insert(name);
        }
    }
    let truncated = names.len() > max;
    Ok((names.into_iter().take(max).collect(), truncated))
}

/// A database that could not be opened (disk, permissions, a corrupt file).
#[derive(Debug, thiserror::Error)]
#[error("cannot open the database: {0}")]
pub(crate) struct OpenError(String);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::BlobsUrl;

    fn registry_in(dir: &Path) -> Registry {
        let url = BlobsUrl::default_in(dir);
        let blobs = BlobBackend::open(&url, dir, tokio::runtime::Handle::current()).unwrap();
        Registry::new(dir.to_owned(), blobs)
    }

    #[tokio::test]
    async fn databases_open_once_and_notify() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dbs")).unwrap();
        let registry = registry_in(dir.path());
        let name = DatabaseName::new("notes").unwrap();
        let a = registry.open(&name).await.unwrap();
        let b = registry.open(&name).await.unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(Arc::ptr_eq(&a.blobs(), &b.blobs()));
        assert!(dir.path().join("dbs/notes.db").exists());
        assert!(dir.path().join("staging/notes").is_dir());
        assert!(a.blobs().describe().ends_with("/blobs/notes"));
        let mut commits = b.subscribe();
        a.committed(7);
        a.committed(3);
        commits.changed().await.unwrap();
        assert_eq!(*commits.borrow_and_update(), 7);
        assert!(!commits.has_changed().unwrap());
    }

    #[tokio::test]
    async fn listing_finds_database_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry_in(dir.path());
        assert_eq!(registry.list(10).unwrap(), (vec![], false));
        std::fs::create_dir_all(dir.path().join("dbs")).unwrap();
        let opened = registry.subscribe_opened();
        for name in ["b", "a", "c"] {
            registry
                .open(&DatabaseName::new(name).unwrap())
                .await
                .unwrap();
        }
        assert!(opened.has_changed().unwrap());
        for other in ["x.db-wal", ".hidden.db", "bad name.db", "notes.txt"] {
            std::fs::write(dir.path().join("dbs").join(other), b"").unwrap();
        }
        let names = |list: Vec<DatabaseName>| -> Vec<String> {
            list.iter().map(|n| n.as_str().to_owned()).collect()
        };
        let (all, truncated) = registry.list(10).unwrap();
        assert_eq!(
            (names(all), truncated),
            (vec!["a".into(), "b".into(), "c".into()], false)
        );
        let (two, truncated) = registry.list(2).unwrap();
        assert_eq!(
            (names(two), truncated),
            (vec!["a".into(), "b".into()], true)
        );
    }
}
