//! `weft sql DB SQL`: run statements, print the rows of the last one.
//!
//! Statements are prepared one at a time with rusqlite's [`Batch`], each only after the one
//! before it ran (so `CREATE TABLE t ...; INSERT INTO t ...` works), and SQLite itself finds
//! where each ends: a `;` inside a string, a comment or a trigger body does not split.

use super::{open, render};
use crate::limits::SPOOL_MEMORY_MAX;
use anyhow::{bail, Context};
use fallible_iterator::FallibleIterator;
use std::io::{BufWriter, Seek, Write};
use std::path::Path;
use tempfile::SpooledTempFile;
use weft_core::rusqlite::{Batch, Row};

/// How `weft sql` prints rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    /// One row per line, columns separated by tabs.
    Text,
    /// One JSON array of arrays.
    Json,
}

/// Runs `sql` on the replica at `db` (created if missing) and prints the last statement's rows.
pub(super) fn run(db: &Path, sql: &str, format: Format) -> anyhow::Result<()> {
    let replica = open::create(db)?;
    let conn = replica.connection();
    let mut batch = Batch::new(conn, sql);
    let mut last: Option<SpooledTempFile> = None;
    let mut index = 0;
    loop {
        let statement = batch
            .next()
            .with_context(|| format!("statement {}", index + 1))?;
        let Some(mut statement) = statement else {
            break;
        };
        index += 1;
        if statement.parameter_count() > 0 {
            bail!("statement {index} has parameters (`?`); weft sql binds none");
        }
        let columns = statement.column_count();
        let mut output = (columns > 0).then(|| Output::new(format));
        let mut rows = statement.raw_query();
        while let Some(row) = rows.next().with_context(|| format!("statement {index}"))? {
            if let Some(output) = output.as_mut() {
                output.row(row, columns)?;
            }
        }
        last = output.map(Output::finish).transpose()?;
    }
    if index == 0 {
        bail!("no SQL statement given");
    }
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
        bail!("the SQL leaves a transaction open (BEGIN without COMMIT); it was rolled back");
    }
    if let Some(mut spool) = last {
        spool.rewind()?;
        let mut stdout = std::io::stdout().lock();
        std::io::copy(&mut spool, &mut stdout)?;
        stdout.flush()?;
    }
    Ok(())
}

/// The rendered rows of one statement.
struct Output {
    format: Format,
    rows: usize,
    out: BufWriter<SpooledTempFile>,
}

impl Output {
    fn new(format: Format) -> Output {
        Output {
            format,
            rows: 0,
            out: BufWriter::new(tempfile::spooled_tempfile(SPOOL_MEMORY_MAX)),
        }
    }

    fn row(&mut self, row: &Row<'_>, columns: usize) -> anyhow::Result<()> {
        match self.format {
            Format::Text => {
                for i in 0..columns {
                    if i > 0 {
                        self.out.write_all(b"\t")?;
                    }
                    self.out
                        .write_all(render::text(row.get_ref(i)?).as_bytes())?;
                }
                self.out.write_all(b"\n")?;
            }
            Format::Json => {
                let values = (0..columns)
                    .map(|i| Ok(render::json(row.get_ref(i)?)))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                self.out
                    .write_all(if self.rows == 0 { b"[" } else { b"," })?;
                serde_json::to_writer(&mut self.out, &values)?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// The finished output; a query without rows is nothing in text and `[]` in JSON.
    fn finish(mut self) -> anyhow::Result<SpooledTempFile> {
        if self.format == Format::Json {
            self.out
                .write_all(if self.rows == 0 { b"[]\n" } else { b"]\n" })?;
        }
        Ok(self.out.into_inner().map_err(|e| e.into_error())?)
    }
}
