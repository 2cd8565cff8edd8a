//! Database names: which are allowed, and the file each one maps to.

use crate::limits::DATABASE_NAME_MAX;
use std::path::{Path, PathBuf};

/// Why a database name is refused, in words for an HTTP 400 or a command-line error.
pub const DATABASE_NAME_RULE: &str =
    "a database name is 1 to 64 ASCII letters, digits, '_' or '-', starting with a letter or digit";

/// A valid database name: `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`. Such a name can never leave
/// the directory it is joined to (no `/`, `\`, `.` or `%`), nor name a hidden file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatabaseName(String);

/// A name that breaks [`DATABASE_NAME_RULE`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid database name: {DATABASE_NAME_RULE}")]
pub struct InvalidDatabaseName;

impl DatabaseName {
    /// Checks `name` against the rule.
    pub fn new(name: &str) -> Result<DatabaseName, InvalidDatabaseName> {
        let bytes = name.as_bytes();
        let first_ok = bytes.first().is_some_and(u8::is_ascii_alphanumeric);
        let rest_ok = bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-');
        if first_ok && rest_ok && bytes.len() <= DATABASE_NAME_MAX {
            Ok(DatabaseName(name.to_owned()))
        } else {
            Err(InvalidDatabaseName)
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The database's file under the data directory: `DATA/dbs/NAME.db`.
    pub fn file_in(&self, data_dir: &Path) -> PathBuf {
        databases_dir(data_dir).join(format!("{}.db", self.0))
    }
}

impl std::fmt::Display for DatabaseName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The directory holding one SQLite file per database: `DATA/dbs`.
pub fn databases_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("dbs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names_pass() {
        for name in ["a", "A", "0", "notes", "my-app_2", "x".repeat(64).as_str()] {
            assert_eq!(DatabaseName::new(name).map(|n| n.0), Ok(name.to_owned()));
        }
    }

    #[test]
    fn bad_names_fail() {
        let long = "x".repeat(65);
        for name in [
            "", "..", ".", "../x", "..%2Fx", "a/b", "a\\b", "-a", "_a", ".hidden", "a.db", "a b",
            "é", "a\0", "a%20", &long,
        ] {
            assert_eq!(
                DatabaseName::new(name),
                Err(InvalidDatabaseName),
                "{name:?}"
            );
        }
    }

    #[test]
    fn files_stay_under_dbs() {
        let name = DatabaseName::new("notes").unwrap();
        assert_eq!(
            name.file_in(Path::new("/data")),
            PathBuf::from("/data/dbs/notes.db")
        );
    }
}
