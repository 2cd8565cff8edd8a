//! Change listeners and reactive queries from apps.

use crate::database::Database;
use crate::error::{Result, WeftError};
use crate::handles::Stoppable;
use crate::value::{to_values, QueryResult, SqlValue};
use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::sync::Arc;
use weft_client::listen::ListenError;
use weft_client::ListenOptions;

/// One committed transaction, as a change listener hears it.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct ChangeEvent {
    /// The replica's db_version of the transaction.
    pub db_version: u64,
    /// The tables it changed, each once, in name order.
    pub tables: Vec<String>,
    /// How many rows it changed.
    pub rows: u64,
    /// Whether it was written on this device (else merged from elsewhere by sync).
    pub local: bool,
}

/// Hears every committed transaction of a database, local or merged, on a Weft thread, in
/// commit order.
#[uniffi::export(callback_interface)]
pub trait ChangeListener: Send + Sync {
    /// A transaction committed. Must not block for long; must not throw.
    fn on_change(&self, event: ChangeEvent);
}

/// Receives a reactive query's rows: once at once, then again each time a table the query
/// reads changes and the rows differ.
#[uniffi::export(callback_interface)]
pub trait QueryListener: Send + Sync {
    /// The query's rows now. Must not block for long; must not throw.
    fn on_rows(&self, result: QueryResult);
}

/// A running change listener or reactive query; `cancel` (or closing the database, or
/// dropping it) ends it.
#[derive(uniffi::Object)]
pub struct Subscription {
    running: Mutex<Option<weft_client::Subscription>>,
}

#[uniffi::export]
impl Subscription {
    /// Stops it, after a callback that is running returns. Cancelling twice is fine.
    pub fn cancel(&self) {
        let running = self.running.lock().take();
        drop(running);
    }

    /// Whether it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.running.lock().is_none()
    }
}

impl Stoppable for Subscription {
    fn stop_now(&self) {
        self.cancel();
    }
}

#[uniffi::export]
impl Database {
    /// Calls `listener` after every committed transaction from now on: this app's writes,
    /// merges by sync, other processes' writes.
    pub fn on_change(&self, listener: Box<dyn ChangeListener>) -> Result<Arc<Subscription>> {
        let open = self.opened()?;
        let own_site = open.writer()?.site_id().to_hex();
        let running =
            weft_client::on_change_event(self.file(), ListenOptions::default(), move |event| {
                let tables: BTreeSet<&str> =
                    event.changes.iter().map(|c| c.table.as_str()).collect();
                listener.on_change(ChangeEvent {
                    db_version: event.db_version,
                    tables: tables.into_iter().map(str::to_owned).collect(),
                    rows: event.changes.len() as u64,
                    local: event.origin.as_deref() == Some(own_site.as_str()),
                });
            })
            .map_err(listen_error)?;
        Ok(self.keep(running))
    }

    /// Runs the query `sql` with `params`, delivers its rows to `listener` at once, and again
    /// whenever a transaction (local or merged) changed a table it reads and the rows differ.
    pub fn watch(
        &self,
        sql: String,
        params: Vec<SqlValue>,
        listener: Box<dyn QueryListener>,
    ) -> Result<Arc<Subscription>> {
        self.opened()?;
        let running = weft_client::reactive_query(
            self.file(),
            &sql,
            to_values(params),
            None,
            ListenOptions::default(),
            move |result| {
                listener.on_rows(QueryResult {
                    columns: result.columns.clone(),
                    rows: result
                        .rows
                        .iter()
                        .map(|row| row.iter().cloned().map(SqlValue::from).collect())
                        .collect(),
                })
            },
        )
        .map_err(listen_error)?;
        Ok(self.keep(running))
    }
}

impl Database {
    fn keep(&self, running: weft_client::Subscription) -> Arc<Subscription> {
        let subscription = Arc::new(Subscription {
            running: Mutex::new(Some(running)),
        });
        self.handles.add(subscription.clone());
        subscription
    }
}

fn listen_error(error: ListenError) -> WeftError {
    match error {
        ListenError::Query(message) => WeftError::Sql { message },
        ListenError::Open { source, .. } => source.into(),
        ListenError::Thread(error) => error.into(),
    }
}
