//! The example as a user runs it: the `todo` binary on two devices' files, syncing through a
//! Weft server on 127.0.0.1 (the server's own code, in this process) with tokens.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use weft_server::{
    AuthMode, DefaultChangeAuthorizer, Grant, Secret, Server, ServerConfig, TokenRole,
};

fn todo(db: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_todo"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("run todo");
    assert!(
        output.status.success(),
        "todo {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn two_devices_add_offline_and_converge_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let secret = Secret::generate().unwrap();
    let token = weft_server::token::mint(
        &secret,
        &Grant {
            sub: "tester".into(),
            dbs: vec!["todos".into()],
            write: true,
            role: TokenRole::Client,
            ttl: Duration::from_secs(600),
        },
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut config = ServerConfig::new(dir.path().join("server"), AuthMode::Token(secret));
    config.listen = "127.0.0.1:0".into();
    let server = runtime
        .block_on(Server::bind(config, Arc::new(DefaultChangeAuthorizer)))
        .unwrap();
    let url = format!("ws://{}/v1/sync/todos", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn(server.run_until(async move {
        let _ = stopped.await;
    }));

    let (laptop, phone) = (dir.path().join("laptop.db"), dir.path().join("phone.db"));
    assert!(todo(&laptop, &["add", "buy milk"]).starts_with("added"));
    assert!(todo(&phone, &["add", "call mum"]).starts_with("added"));
    let sync = ["sync", "--url", url.as_str(), "--token", token.as_str()];
    todo(&laptop, &sync);
    todo(&phone, &sync);
    todo(&laptop, &sync);
    let (on_laptop, on_phone) = (todo(&laptop, &["list"]), todo(&phone, &["list"]));
    assert_eq!(on_laptop, on_phone);
    assert!(
        on_laptop.contains("buy milk") && on_laptop.contains("call mum"),
        "{on_laptop}"
    );

    let id = on_phone
        .lines()
        .find(|l| l.contains("buy milk"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap()
        .to_owned();
    todo(&phone, &["done", &id]);
    todo(&phone, &sync);
    todo(&laptop, &sync);
    assert!(todo(&laptop, &["list"]).contains(&format!("[x] {id} buy milk")));

    let refused = Command::new(env!("CARGO_BIN_EXE_todo"))
        .arg("--db")
        .arg(&laptop)
        .args(["sync", "--url", &url, "--token", "not-a-token"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"));

    let _ = stop.send(());
    runtime.block_on(serving).unwrap().unwrap();
}
