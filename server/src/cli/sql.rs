//! `weft sql DB SQL`: run statements, print the rows of the last one.

use super::{open, render};
use anyhow::Context;
use fallible_iterator::FallibleIterator;
use std::io::Write;
use std::path::Path;
use weft_core::rusqlite::{self, Batch};

/// Most rows printed; a query returning more is an error rather than a flood.
const ROWS_MAX: usize = 1_000_000;

/// Runs `sql` on the replica at `db` and prints the last statement's rows.
pub(super) fn run(db: &Path, sql: &str, as_json: bool) -> anyhow::Result<()> {
    let replica = open::replica(db)?;
    let conn = replica.connection();
    let mut batch = Batch::new(conn, sql);
    let mut last: Option<Vec<Vec<rusqlite::types::Value>>> = None;
    let mut index = 0;
    while let Some(mut statement) = batch
        .next()
        .with_context(|| format!("statement {} does not prepare", index + 1))?
    {
        index += 1;
        let columns = statement.column_count();
        let mut rows = statement.raw_query();
        let mut collected = Vec::new();
        while let Some(row) = rows
            .next()
            .with_context(|| format!("statement {index} failed"))?
        {
            if collected.len() == ROWS_MAX {
                anyhow::bail!("statement {index} returns more than {ROWS_MAX} rows; add a LIMIT");
            }
            collected.push(
                (0..columns)
                    .map(|i| row.get(i))
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            );
        }
        last = (columns > 0).then_some(collected);
    }
    if index == 0 {
        anyhow::bail!("no SQL statement given");
    }
    let Some(rows) = last else { return Ok(()) };
    let mut out = std::io::stdout().lock();
    if as_json {
        let json: Vec<Vec<serde_json::Value>> = rows
            .iter()
            .map(|row| row.iter().map(|v| render::json(v.into())).collect())
            .collect();
        writeln!(out, "{}", serde_json::to_string(&json)?)?;
    } else {
        for row in rows {
            let line: Vec<String> = row.iter().map(|v| render::text(v.into())).collect();
            writeln!(out, "{}", line.join("\t"))?;
        }
    }
    Ok(())
}
