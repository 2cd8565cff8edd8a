//! The `weft` binary, run as a user runs it.

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::{Path, PathBuf};

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

fn weft() -> Command {
    Command::cargo_bin("weft").unwrap()
}

fn sql(db: &Path, statements: &str) -> String {
    let out = weft().arg("sql").arg(db).arg(statements).assert().success();
    String::from_utf8(out.get_output().stdout.clone()).unwrap()
}

fn digest(db: &Path) -> String {
    let out = weft().arg("digest").arg(db).assert().success();
    String::from_utf8(out.get_output().stdout.clone())
        .unwrap()
        .trim()
        .to_owned()
}

const TODO: &str =
    "CREATE TABLE todo(id INTEGER PRIMARY KEY, title TEXT, done INTEGER NOT NULL DEFAULT 0)";

fn todo_replica(dir: &Dir, name: &str) -> PathBuf {
    let db = dir.path(name);
    sql(&db, TODO);
    weft().arg("crr").arg(&db).arg("todo").assert().success();
    db
}

fn export(db: &Path, out: &Path) {
    weft()
        .arg("export")
        .arg(db)
        .arg("--out")
        .arg(out)
        .assert()
        .success()
        .stderr(predicate::str::contains("exported"));
}

#[test]
fn sql_prints_the_last_statements_rows_as_text_and_json() {
    let dir = Dir::new();
    let db = dir.path("a.db");
    let text = sql(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, s TEXT, b BLOB, r REAL); INSERT INTO t VALUES (1, 'semi;colon', x'0aff', 2.5), (2, NULL, NULL, NULL); SELECT * FROM t ORDER BY id");
    assert_eq!(text, "1\tsemi;colon\tx'0aff'\t2.5\n2\tNULL\tNULL\tNULL\n");
    let out = weft()
        .arg("sql")
        .arg(&db)
        .arg("SELECT id, s, b, r FROM t ORDER BY id")
        .arg("--json")
        .assert()
        .success();
    let json = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert_eq!(
        json.trim(),
        r#"[[1,"semi;colon","Cv8=",2.5],[2,null,null,null]]"#
    );
    // A last statement without rows prints nothing.
    assert_eq!(sql(&db, "SELECT 1; INSERT INTO t(id) VALUES (3)"), "");
}

#[test]
fn sql_errors_are_clear_and_name_the_statement() {
    let dir = Dir::new();
    let db = dir.path("a.db");
    weft()
        .arg("sql")
        .arg(&db)
        .arg("SELECT 1; SELEC oops")
        .assert()
        .failure()
        .stderr(predicate::str::contains("error: statement 2"));
    weft()
        .arg("sql")
        .arg(dir.path("missing/dir/a.db"))
        .arg("SELECT 1")
        .assert()
        .failure()
        .stderr(predicate::str::contains("does not exist"));
}

#[test]
fn crr_refuses_tables_that_cannot_merge() {
    let dir = Dir::new();
    let db = dir.path("a.db");
    sql(&db, "CREATE TABLE nokey(a, b)");
    weft()
        .arg("crr")
        .arg(&db)
        .arg("nokey")
        .assert()
        .failure()
        .stderr(predicate::str::contains("PRIMARY KEY"));
    weft()
        .arg("crr")
        .arg(&db)
        .arg("missing")
        .assert()
        .failure()
        .stderr(predicate::str::contains("no such table"));
}

#[test]
fn export_then_import_converges_and_importing_twice_changes_nothing() {
    let dir = Dir::new();
    let laptop = todo_replica(&dir, "laptop.db");
    let phone = todo_replica(&dir, "phone.db");
    sql(&laptop, "INSERT INTO todo(id, title) VALUES (1, 'milk'), (2, 'eggs'); UPDATE todo SET done = 1 WHERE id = 1");
    sql(&phone, "INSERT INTO todo(id, title) VALUES (3, 'bread')");
    let before = digest(&laptop);
    assert_eq!(before.len(), 64);
    assert!(before.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(before, digest(&phone));
    let (to_phone, to_laptop) = (dir.path("to-phone.bundle"), dir.path("to-laptop.bundle"));
    export(&laptop, &to_phone);
    export(&phone, &to_laptop);
    weft()
        .arg("import")
        .arg(&phone)
        .arg(&to_phone)
        .assert()
        .success()
        .stderr(predicate::str::contains("(6 new"));
    weft()
        .arg("import")
        .arg(&laptop)
        .arg(&to_laptop)
        .assert()
        .success();
    assert_eq!(digest(&laptop), digest(&phone));
    let rows = "SELECT id, title, done FROM todo ORDER BY id";
    assert_eq!(sql(&phone, rows), "1\tmilk\t1\n2\teggs\t0\n3\tbread\t0\n");
    assert_eq!(sql(&laptop, rows), sql(&phone, rows));
    let settled = digest(&phone);
    weft()
        .arg("import")
        .arg(&phone)
        .arg(&to_phone)
        .assert()
        .success()
        .stderr(predicate::str::contains("(0 new"));
    assert_eq!(digest(&phone), settled);
}

#[test]
fn damaged_bundles_are_refused_and_apply_nothing() {
    let dir = Dir::new();
    let laptop = todo_replica(&dir, "laptop.db");
    let phone = todo_replica(&dir, "phone.db");
    sql(
        &laptop,
        "INSERT INTO todo(id, title) VALUES (1, 'milk'), (2, 'eggs')",
    );
    let bundle = dir.path("b.bundle");
    export(&laptop, &bundle);
    let bytes = std::fs::read(&bundle).unwrap();
    let before = digest(&phone);
    let truncated = dir.path("truncated.bundle");
    std::fs::write(&truncated, &bytes[..bytes.len() - 7]).unwrap();
    weft()
        .arg("import")
        .arg(&phone)
        .arg(&truncated)
        .assert()
        .failure()
        .stderr(predicate::str::contains("truncated"));
    let corrupted = dir.path("corrupted.bundle");
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    std::fs::write(&corrupted, &flipped).unwrap();
    weft()
        .arg("import")
        .arg(&phone)
        .arg(&corrupted)
        .assert()
        .failure()
        .stderr(predicate::str::contains("nothing was imported"));
    weft()
        .arg("import")
        .arg(&phone)
        .arg(dir.path("absent.bundle"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("does not exist"));
    assert_eq!(digest(&phone), before);
    assert_eq!(sql(&phone, "SELECT count(*) FROM todo"), "0\n");
}

#[test]
fn info_reports_site_version_and_tables() {
    let dir = Dir::new();
    let db = todo_replica(&dir, "a.db");
    sql(&db, "INSERT INTO todo(id, title) VALUES (1, 'a'), (2, 'b')");
    let out = weft().arg("info").arg(&db).arg("--json").assert().success();
    let info: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(info["site_id"].as_str().unwrap().len(), 32);
    assert_eq!(info["tables"]["todo"], 2);
    assert_eq!(
        info["db_version"], 1,
        "one INSERT statement is one transaction"
    );
    weft()
        .arg("info")
        .arg(&db)
        .assert()
        .success()
        .stdout(predicate::str::contains("todo").and(predicate::str::contains("2 rows")));
}
