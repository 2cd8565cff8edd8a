//! Which bucket names and entry names are allowed. The same rules are CHECK constraints on
//! the listing table, so a row that breaks them is refused whether it was written locally or
//! arrived in a batch (which is then refused whole).

use crate::error::{Error, Result};
use crate::limits::{BUCKET_NAME_BYTES_MAX, ENTRY_NAME_BYTES_MAX};

/// Checks a bucket name: 1 to 64 ASCII letters, digits, `.`, `_` or `-`, starting with a
/// letter or digit.
pub fn check_bucket(bucket: &str) -> Result<()> {
    let ok = !bucket.is_empty()
        && bucket.len() <= BUCKET_NAME_BYTES_MAX
        && bucket.as_bytes()[0].is_ascii_alphanumeric()
        && bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(format!(
            "bucket {bucket:?}: a bucket name is 1 to {BUCKET_NAME_BYTES_MAX} ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"
        )))
    }
}

/// Checks an entry name: 1 to 1024 bytes of text without control characters or `\`, and,
/// split at `/`, no empty, `.` or `..` part (so `photos/2026/a.jpg` is fine and `../x`,
/// `/x` and `a//b` are not).
pub fn check_entry(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= ENTRY_NAME_BYTES_MAX
        && !name.chars().any(|c| c < ' ' || c == '\u{7f}' || c == '\\')
        && name.split('/').all(|part| !matches!(part, "" | "." | ".."));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(format!(
            "name {:?}: a name is 1 to {ENTRY_NAME_BYTES_MAX} bytes without control characters or '\\', and no part between '/' may be empty, '.' or '..'",
            name.chars().take(80).collect::<String>()
        )))
    }
}

/// The CHECK constraints of the listing table: the rules above in SQL, and the hash as 64
/// lowercase hex digits (or empty, the default a merged row has until its hash arrives).
pub(crate) const LISTING_CHECKS: &str = "
  CHECK (length(bucket) BETWEEN 1 AND 64 AND bucket GLOB '[A-Za-z0-9]*' AND bucket NOT GLOB '*[^A-Za-z0-9._-]*'),
  CHECK (length(CAST(name AS BLOB)) BETWEEN 1 AND 1024
         AND ('/' || name || '/') NOT GLOB '*//*'
         AND ('/' || name || '/') NOT GLOB '*/./*'
         AND ('/' || name || '/') NOT GLOB '*/../*'
         AND name NOT GLOB '*\\*'
         AND name NOT GLOB ('*[' || char(1) || '-' || char(31) || char(127) || ']*')
         AND instr(name, char(0)) = 0),
  CHECK (hash = '' OR (length(hash) = 64 AND hash NOT GLOB '*[^0-9a-f]*')),
  CHECK (size >= 0)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_like_and_odd_names_are_refused() {
        for bad in ["", "../x", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_bucket(bad).is_err(), "{bad:?}");
        }
        for good in ["photos", "a", "user-42.avatars_v2"] {
            check_bucket(good).unwrap();
        }
        for bad in [
            "", "../x", "a/../b", "/abs", "a//b", "a/", ".", "a\\b", "a\nb", "a\0b",
        ] {
            assert!(check_entry(bad).is_err(), "{bad:?}");
        }
        for good in [
            "cat.jpg",
            "photos/2026/cat.jpg",
            "..a",
            "a..",
            "名前.png",
            "a b.txt",
        ] {
            check_entry(good).unwrap();
        }
    }
}
