//! The `weft` binary, run as a user runs it.

mod support;

use support::{stdout, weft_assert as weft, Dir};

use predicates::prelude::*;
use std::path::{Path, PathBuf};

fn sql(db: &Path, statements: &str) -> String {
    stdout(&weft().arg("sql").arg(db).arg(statements).assert().success())
}

fn sql_json(db: &Path, statements: &str) -> String {
    let out = weft()
        .arg("sql")
        .arg(db)
        .arg(statements)
        .arg("--json")
        .assert()
        .success();
    stdout(&out)
}

fn digest(db: &Path) -> String {
    stdout(&weft().arg("digest").arg(db).assert().success())
}

const TODO: &str =
    "CREATE TABLE todo(id INTEGER PRIMARY KEY, title TEXT, done INTEGER NOT NULL DEFAULT 0)";

fn todo_replica(dir: &Dir, name: &str) -> PathBuf {
    let db = dir.path(name);
    sql(&db, TODO);
    weft().arg("crr").arg(&db).arg("todo").assert().success();
    db
}

fn export(db: &Path, out: &Path) -> String {
    let assert = weft()
        .arg("export")
        .arg(db)
        .arg("--out")
        .arg(out)
        .assert()
        .success();
    String::from_utf8(assert.get_output().stderr.clone()).unwrap()
}

fn import(db: &Path, bundle: &Path) -> String {
    let assert = weft().arg("import").arg(db).arg(bundle).assert().success();
    String::from_utf8(assert.get_output().stderr.clone()).unwrap()
}

#[test]
fn sql_prints_the_last_statements_rows_as_text_and_json() {
    let dir = Dir::new();
    let db = dir.path("a.db");
    let text = sql(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, s TEXT, b BLOB, r REAL); INSERT INTO t VALUES (1, 'semi;colon', x'0aff', 2.5), (2, NULL, NULL, NULL), (3, '', x'', 1.0); SELECT * FROM t ORDER BY id");
    assert_eq!(
        text,
        "1\tsemi;colon\tx'0aff'\t2.5\n2\tNULL\tNULL\tNULL\n3\t\tx''\t1.0\n"
    );
    assert_eq!(
        sql_json(&db, "SELECT id, s, b, r FROM t ORDER BY id"),
        "[[1,\"semi;colon\",\"Cv8=\",2.5],[2,null,null,null],[3,\"\",\"\",1.0]]\n"
    );
    assert_eq!(
        sql_json(&db, "SELECT 9223372036854775807, -1, 'tab\tnew\nline'"),
        "[[9223372036854775807,-1,\"tab\\tnew\\nline\"]]\n",
        "integers are exact; text is escaped in JSON"
    );
}

#[test]
fn sql_with_several_statements_prints_only_the_last() {
    let dir = Dir::new();
    let db = dir.path("a.db");
    assert_eq!(sql(&db, "SELECT 1; SELECT 2, 'x;y'; SELECT 3"), "3\n");
    assert_eq!(
        sql(&db, "SELECT 'a;b'; -- c;d\n SELECT 'e' /* f;g */"),
        "e\n"
    );
    // A last statement without rows prints nothing; a query without rows is [] in JSON.
    sql(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    assert_eq!(sql(&db, "SELECT 1; INSERT INTO t(id) VALUES (1)"), "");
    assert_eq!(sql_json(&db, "SELECT 1; INSERT INTO t(id) VALUES (2)"), "");
    assert_eq!(sql(&db, "SELECT * FROM t WHERE id > 99"), "");
    assert_eq!(sql_json(&db, "SELECT * FROM t WHERE id > 99"), "[]\n");
    // A trigger body holds `;` that do not end the CREATE TRIGGER statement.
    let out = sql(
        &db,
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET v = 'x;y' WHERE id = new.id; END; INSERT INTO t(id) VALUES (3); SELECT id, v FROM t ORDER BY id",
    );
    assert_eq!(out, "1\tNULL\n2\tNULL\n3\tx;y\n");
    // SQL starting with a comment is not taken for an option.
    assert_eq!(sql(&db, "-- count\nSELECT count(*) FROM t"), "3\n");
}

#[test]
fn sql_prints_results_larger_than_memory_spool() {
    let dir = Dir::new();
    let db = dir.path("a.db");
    // 500,000 lines of 41 bytes: 20 MB, more than the 16 MiB held in memory.
    let out = sql(&db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500000) SELECT printf('%040d', x) FROM c");
    assert_eq!(out.len(), 500_000 * 41);
    assert!(out.starts_with(&format!("{:040}\n", 1)));
    assert!(out.ends_with(&format!("{:040}\n", 500_000)));
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
        .stdout("")
        .stderr(predicate::str::starts_with("error: statement 2: "));
    weft()
        .arg("sql")
        .arg(&db)
        .arg(" ; -- nothing")
        .assert()
        .failure()
        .stderr("error: no SQL statement given\n");
    weft()
        .arg("sql")
        .arg(&db)
        .arg("SELECT ?")
        .assert()
        .failure()
        .stderr(predicate::str::contains("parameters"));
    let missing = dir.path("missing/dir/a.db");
    weft()
        .arg("sql")
        .arg(&missing)
        .arg("SELECT 1")
        .assert()
        .failure()
        .stderr(predicate::str::contains("does not exist"));
    assert!(!dir.path("missing").exists(), "no directory is created");
    weft()
        .arg("sql")
        .arg(dir.0.path())
        .arg("SELECT 1")
        .assert()
        .failure()
        .stderr(predicate::str::contains("is a directory"));
    let junk = dir.path("junk.db");
    std::fs::write(
        &junk,
        "this is not a database, it is a text file of some length",
    )
    .unwrap();
    weft()
        .arg("sql")
        .arg(&junk)
        .arg("SELECT 1")
        .assert()
        .failure()
        .stderr(
            "error: cannot open replica ".to_owned()
                + &junk.display().to_string()
                + ": sqlite: file is not a database\n",
        );
}

#[test]
fn sql_rolls_back_a_transaction_left_open() {
    let dir = Dir::new();
    let db = dir.path("a.db");
    sql(&db, "CREATE TABLE t(id INTEGER PRIMARY KEY)");
    weft()
        .arg("sql")
        .arg(&db)
        .arg("BEGIN; INSERT INTO t VALUES (1)")
        .assert()
        .failure()
        .stderr(predicate::str::contains("BEGIN without COMMIT"));
    assert_eq!(sql(&db, "SELECT count(*) FROM t"), "0\n");
    sql(&db, "BEGIN; INSERT INTO t VALUES (2); COMMIT");
    assert_eq!(sql(&db, "SELECT id FROM t"), "2\n");
}

#[test]
fn a_reader_closing_the_pipe_is_not_an_error() {
    use std::process::Stdio;
    let dir = Dir::new();
    let db = dir.path("a.db");
    sql(&db, "SELECT 1");
    let mut child = support::weft()
        .arg("sql")
        .arg(&db)
        .arg("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) SELECT x FROM c")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert!(output.status.success());
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
        .stderr(
            predicate::str::starts_with("error: ").and(predicate::str::contains("PRIMARY KEY")),
        );
    weft()
        .arg("crr")
        .arg(&db)
        .arg("missing")
        .assert()
        .failure()
        .stderr(predicate::str::contains("no such table"));
    let info = stdout(&weft().arg("info").arg(&db).arg("--json").assert().success());
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert!(
        info["tables"].get("nokey").is_none(),
        "a refused table is not replicated"
    );
}

#[test]
fn commands_that_need_a_replica_do_not_create_one() {
    let dir = Dir::new();
    let absent = dir.path("typo.db");
    for args in [vec!["digest"], vec!["info"], vec!["export"], vec!["crr"]] {
        let mut command = weft();
        command.args(&args).arg(&absent);
        if args[0] == "crr" {
            command.arg("todo");
        }
        command
            .assert()
            .failure()
            .stderr(predicate::str::contains("does not exist"));
    }
    assert!(!absent.exists());
}

#[test]
fn export_then_import_converges_and_importing_twice_changes_nothing() {
    let dir = Dir::new();
    let laptop = todo_replica(&dir, "laptop.db");
    let phone = todo_replica(&dir, "phone.db");
    sql(&laptop, "INSERT INTO todo(id, title) VALUES (1, 'milk'), (2, 'eggs'); UPDATE todo SET done = 1 WHERE id = 1");
    sql(&phone, "INSERT INTO todo(id, title) VALUES (3, 'bread')");
    let before = digest(&laptop);
    assert_eq!(before.len(), 65);
    assert!(before.ends_with('\n'));
    assert!(before.trim_end().chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(before, digest(&phone));
    let (to_phone, to_laptop) = (dir.path("to-phone.bundle"), dir.path("to-laptop.bundle"));
    assert_eq!(
        export(&laptop, &to_phone),
        "exported 6 changes in 1 frame, complete through db_version 2\n"
    );
    export(&phone, &to_laptop);
    assert_eq!(
        import(&phone, &to_phone),
        "imported 6 changes (6 new to this replica)\n"
    );
    import(&laptop, &to_laptop);
    assert_eq!(digest(&laptop), digest(&phone));
    let rows = "SELECT id, title, done FROM todo ORDER BY id";
    assert_eq!(sql(&phone, rows), "1\tmilk\t1\n2\teggs\t0\n3\tbread\t0\n");
    assert_eq!(sql(&laptop, rows), sql(&phone, rows));
    let settled = digest(&phone);
    assert_eq!(
        import(&phone, &to_phone),
        "imported 6 changes (0 new to this replica)\n"
    );
    assert_eq!(digest(&phone), settled);
    assert_eq!(sql(&phone, rows), "1\tmilk\t1\n2\teggs\t0\n3\tbread\t0\n");
}

#[test]
fn counts_of_one_are_singular() {
    let dir = Dir::new();
    let db = dir.path("tags.db");
    sql(&db, "CREATE TABLE tag(id INTEGER PRIMARY KEY)");
    weft().arg("crr").arg(&db).arg("tag").assert().success();
    sql(&db, "INSERT INTO tag VALUES (1)");
    let bundle = dir.path("tags.bundle");
    assert_eq!(
        export(&db, &bundle),
        "exported 1 change in 1 frame, complete through db_version 1\n"
    );
    assert_eq!(
        import(&dir.path("copy.db"), &bundle),
        "imported 1 change (1 new to this replica)\n"
    );
    weft()
        .arg("info")
        .arg(&db)
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"\n  tag +1 row\n").unwrap());
}

#[test]
fn export_writes_to_stdout_and_since_sends_only_what_is_new() {
    let dir = Dir::new();
    let laptop = todo_replica(&dir, "laptop.db");
    sql(&laptop, "INSERT INTO todo(id, title) VALUES (1, 'milk')");
    sql(&laptop, "INSERT INTO todo(id, title) VALUES (2, 'eggs')");
    let out = weft().arg("export").arg(&laptop).assert().success();
    let bundle = out.get_output().stdout.clone();
    assert!(bundle.starts_with(b"WEFTBNDL"));
    let whole = dir.path("whole.bundle");
    std::fs::write(&whole, &bundle).unwrap();
    let fresh = dir.path("fresh.db");
    assert_eq!(
        import(&fresh, &whole),
        "imported 6 changes (6 new to this replica)\n",
        "import creates a missing replica"
    );
    assert_eq!(digest(&fresh), digest(&laptop));
    // Only the second INSERT's changes follow db_version 1.
    weft()
        .arg("export")
        .arg(&laptop)
        .args(["--since", "1"])
        .assert()
        .success()
        .stderr("exported 3 changes in 1 frame, complete through db_version 2\n");
    weft()
        .arg("export")
        .arg(&laptop)
        .args(["--since", "2", "--out"])
        .arg(dir.path("empty.bundle"))
        .assert()
        .success()
        .stderr("exported 0 changes in 0 frames, complete through db_version 2\n");
    // --out naming the replica itself would erase it.
    weft()
        .arg("export")
        .arg(&laptop)
        .arg("--out")
        .arg(&laptop)
        .assert()
        .failure()
        .stderr(predicate::str::contains("own database file"));
    assert_eq!(sql(&laptop, "SELECT count(*) FROM todo"), "2\n");
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
        .stderr(
            predicate::str::starts_with("error: nothing was imported")
                .and(predicate::str::contains("truncated")),
        );
    assert_eq!(digest(&phone), before);
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
        .stderr(
            predicate::str::starts_with("error: nothing was imported")
                .and(predicate::str::contains("invalid bundle")),
        );
    assert_eq!(digest(&phone), before);
    weft()
        .arg("import")
        .arg(&phone)
        .arg(dir.path("absent.bundle"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("cannot open bundle"));
    assert_eq!(digest(&phone), before);
    assert_eq!(sql(&phone, "SELECT count(*) FROM todo"), "0\n");
    // A damaged bundle does not leave a new, empty replica behind either.
    let fresh = dir.path("fresh.db");
    weft()
        .arg("import")
        .arg(&fresh)
        .arg(&corrupted)
        .assert()
        .failure();
    assert!(!fresh.exists());
}

#[test]
fn info_reports_site_version_and_tables() {
    let dir = Dir::new();
    let db = todo_replica(&dir, "a.db");
    sql(&db, "INSERT INTO todo(id, title) VALUES (1, 'a'), (2, 'b')");
    let out = weft().arg("info").arg(&db).arg("--json").assert().success();
    let info: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let site = info["site_id"].as_str().unwrap();
    assert_eq!(site.len(), 32);
    assert!(site.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(info["tables"]["todo"], 2);
    assert_eq!(info["relayed_registers"], 0);
    assert_eq!(
        info["db_version"], 1,
        "one INSERT statement is one transaction"
    );
    let incarnation = info["incarnation"].as_str().unwrap().to_owned();
    assert_eq!(incarnation.len(), 32);
    // A restored copy is given a new life: the site stays, the incarnation changes.
    let renewed = weft().arg("renew-incarnation").arg(&db).assert().success();
    let renewed = String::from_utf8(renewed.get_output().stdout.clone()).unwrap();
    assert!(
        renewed.starts_with(&format!("incarnation {incarnation} -> ")),
        "{renewed}"
    );
    let out = weft().arg("info").arg(&db).arg("--json").assert().success();
    let after: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(after["site_id"].as_str(), Some(site));
    assert_ne!(after["incarnation"].as_str(), Some(incarnation.as_str()));
    assert!(renewed
        .trim_end()
        .ends_with(after["incarnation"].as_str().unwrap()));
    weft()
        .arg("renew-incarnation")
        .arg(dir.path("missing.db"))
        .assert()
        .failure();
    weft().arg("info").arg(&db).assert().success().stdout(
        predicate::str::contains(format!("site id     {site}\n"))
            .and(predicate::str::contains("db_version  1\n"))
            .and(predicate::str::is_match(r"\n  todo +2 rows\n").unwrap()),
    );
    // A replica without the table relays what it receives for it, and says so.
    let bundle = dir.path("b.bundle");
    export(&db, &bundle);
    let relay = dir.path("relay.db");
    import(&relay, &bundle);
    let out = weft()
        .arg("info")
        .arg(&relay)
        .arg("--json")
        .assert()
        .success();
    let info: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_ne!(info["site_id"].as_str().unwrap(), site);
    assert!(info["tables"].get("todo").is_none());
    assert_eq!(info["relayed_registers"], 6);
    assert_eq!(digest(&relay), digest(&db));
}

#[test]
fn version_and_help() {
    weft()
        .arg("--version")
        .assert()
        .success()
        .stdout(format!("weft {}\n", env!("CARGO_PKG_VERSION")));
    weft()
        .args(["sql", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("NULL").and(predicate::str::contains("--json")));
    weft()
        .args(["export", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--since <DB_VERSION>"));
    weft()
        .arg("frobnicate")
        .assert()
        .failure()
        .stderr(predicate::str::contains("unrecognized subcommand"));
}
