//! Refuses to build against a bundled SQLite without the preupdate hook, which
//! `Replica::write` needs (src/capture), with a message instead of a link error.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBSQLITE3_FLAGS");
    let flags = std::env::var("LIBSQLITE3_FLAGS").unwrap_or_default();
    if !flags
        .split_whitespace()
        .any(|f| f == "-DSQLITE_ENABLE_PREUPDATE_HOOK")
    {
        panic!(
            "weft-core needs SQLite built with its preupdate hook: set \
             LIBSQLITE3_FLAGS=-DSQLITE_ENABLE_PREUPDATE_HOOK for the build (this workspace's \
             .cargo/config.toml does; a project depending on weft-core sets it in its own \
             .cargo/config.toml [env] section)"
        );
    }
}
