//! [`Transaction`]: a write transaction an app opens, fills statement by statement, and
//! commits or rolls back as a whole (Kotlin's `writeTransaction { }`, Python's
//! `with db.transaction() as tx:`).
//!
//! `Replica::write` takes the whole transaction as one closure, but a foreign language hands
//! its statements one call at a time. So a transaction runs on a thread of its own, inside
//! `Replica::write`, executing the statements sent to it over a channel until it is told to
//! commit or roll back, or its handle is dropped (which rolls back).

use crate::database::{lock_writer, Database};
use crate::error::{Result, WeftError};
use crate::statement::{execute_many_on, execute_on, query_on};
use crate::value::{QueryResult, SqlValue};
use parking_lot::Mutex;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

/// What the app asks of its open transaction.
enum Command {
    Execute {
        sql: String,
        params: Vec<SqlValue>,
        reply: mpsc::SyncSender<weft_core::Result<u64>>,
    },
    ExecuteMany {
        sql: String,
        rows: Vec<Vec<SqlValue>>,
        reply: mpsc::SyncSender<weft_core::Result<u64>>,
    },
    Query {
        sql: String,
        params: Vec<SqlValue>,
        reply: mpsc::SyncSender<weft_core::rusqlite::Result<QueryResult>>,
    },
    Commit,
    Rollback,
}

/// Why the transaction's closure returned without committing.
const ROLLED_BACK_BY_APP: &str = "rolled back by the app";

/// An open write transaction. Statements run in order and see each other's writes; nothing
/// is visible to other connections until `commit`. A failing statement raises its error and
/// leaves the transaction open and usable. Dropping it without `commit` rolls it back.
#[derive(uniffi::Object)]
pub struct Transaction {
    commands: Mutex<Option<mpsc::SyncSender<Command>>>,
    worker: Mutex<Option<JoinHandle<weft_core::Result<()>>>>,
}

#[uniffi::export]
impl Database {
    /// Begins a write transaction; waits (up to 10 s) while another one of this database is
    /// open. Every other write of this database waits until it commits or rolls back.
    pub fn begin_transaction(&self) -> Result<Arc<Transaction>> {
        let open = self.opened()?;
        let writer = open.writer.clone();
        let (commands, received) = mpsc::sync_channel::<Command>(0);
        let (started, began) = mpsc::sync_channel::<Result<()>>(1);
        let worker = std::thread::Builder::new()
            .name("weft-transaction".into())
            .spawn(move || {
                let replica = match lock_writer(&writer) {
                    Ok(replica) => replica,
                    Err(busy) => {
                        let _ = started.send(Err(busy));
                        return Ok(());
                    }
                };
                let outcome = replica.write(|conn| {
                    let _ = started.send(Ok(()));
                    serve(conn, &received)
                });
                match outcome {
                    Err(weft_core::Error::WriteRolledBack(reason))
                        if reason == ROLLED_BACK_BY_APP =>
                    {
                        Ok(())
                    }
                    other => other,
                }
            })?;
        match began.recv() {
            Ok(Ok(())) => Ok(Arc::new(Transaction {
                commands: Mutex::new(Some(commands)),
                worker: Mutex::new(Some(worker)),
            })),
            Ok(Err(error)) => Err(error),
            // The write failed before its closure ran (BEGIN refused): its error says why.
            Err(_) => match worker.join() {
                Ok(Err(error)) => Err(error.into()),
                _ => Err(WeftError::Internal {
                    message: "the transaction could not begin".into(),
                }),
            },
        }
    }
}

/// Executes commands until the app commits (Ok) or rolls back or goes away (an error, which
/// makes `Replica::write` roll back).
fn serve(
    conn: &weft_core::rusqlite::Connection,
    received: &mpsc::Receiver<Command>,
) -> weft_core::Result<()> {
    loop {
        match received.recv() {
            Ok(Command::Execute { sql, params, reply }) => {
                let _ = reply.send(execute_on(conn, &sql, params));
            }
            Ok(Command::ExecuteMany { sql, rows, reply }) => {
                let _ = reply.send(execute_many_on(conn, &sql, rows));
            }
            Ok(Command::Query { sql, params, reply }) => {
                let _ = reply.send(query_on(conn, &sql, params));
            }
            Ok(Command::Commit) => return Ok(()),
            Ok(Command::Rollback) | Err(_) => {
                return Err(weft_core::Error::WriteRolledBack(ROLLED_BACK_BY_APP.into()))
            }
        }
    }
}

#[uniffi::export]
impl Transaction {
    /// Runs one statement in the transaction; returns the rows it changed.
    pub fn execute(&self, sql: String, params: Vec<SqlValue>) -> Result<u64> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Command::Execute { sql, params, reply })?;
        Ok(answer.recv().map_err(|_| ended())??)
    }

    /// Runs `sql` once per row of `rows` in the transaction (one crossing for all rows);
    /// returns the rows changed in all. A failing row raises its error; the rows before it
    /// stay in the transaction.
    pub fn execute_many(&self, sql: String, rows: Vec<Vec<SqlValue>>) -> Result<u64> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Command::ExecuteMany { sql, rows, reply })?;
        Ok(answer.recv().map_err(|_| ended())??)
    }

    /// Runs a query in the transaction: it sees the transaction's own writes.
    pub fn query(&self, sql: String, params: Vec<SqlValue>) -> Result<QueryResult> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Command::Query { sql, params, reply })?;
        Ok(answer.recv().map_err(|_| ended())??)
    }

    /// Commits: every write of the transaction becomes visible at once, or, if the commit
    /// fails, none does (the error says why).
    pub fn commit(&self) -> Result<()> {
        self.finish(Command::Commit)
    }

    /// Rolls back: nothing of the transaction is kept. Rolling back a finished transaction
    /// does nothing.
    pub fn rollback(&self) -> Result<()> {
        match self.finish(Command::Rollback) {
            Err(WeftError::Closed { .. }) => Ok(()),
            other => other,
        }
    }

    /// Whether it was committed or rolled back.
    pub fn is_finished(&self) -> bool {
        self.commands.lock().is_none()
    }
}

impl Transaction {
    fn send(&self, command: Command) -> Result<()> {
        let commands = self.commands.lock();
        let sender = commands.as_ref().ok_or_else(ended)?;
        sender.send(command).map_err(|_| ended())
    }

    fn finish(&self, last: Command) -> Result<()> {
        let sender = self.commands.lock().take().ok_or_else(ended)?;
        let _ = sender.send(last);
        drop(sender);
        let worker = self.worker.lock().take();
        match worker.map(JoinHandle::join) {
            Some(Ok(result)) => Ok(result?),
            Some(Err(_)) => Err(WeftError::Internal {
                message: "the transaction's thread failed; nothing of it was kept".into(),
            }),
            None => Err(ended()),
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        // Closing the channel rolls back a transaction still open; wait for it so the
        // database is free when the handle is gone.
        drop(self.commands.lock().take());
        if let Some(worker) = self.worker.lock().take() {
            let _ = worker.join();
        }
    }
}

fn ended() -> WeftError {
    WeftError::Closed {
        message: "the transaction is finished (committed or rolled back)".into(),
    }
}
