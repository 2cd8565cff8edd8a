//! Range-based set reconciliation: how two replicas with no cursors into each other's changes
//! find the rows they hold differently without sending everything.
//!
//! Rows sit in a 64-bit space by row hash ([`crate::sync::fingerprint`]). A side describes a range
//! by its row count and the sum of its rows' fingerprints; the other side compares with its
//! own, and where they differ, splits the range into [`FANOUT`] parts and describes those,
//! or, once it holds at most [`LEAF_ROWS`] rows there, lists them (row hash and fingerprint).
//! A side that sees a list adds its own rows missing from it or different to the rows it
//! will send, and asks for the listed rows it lacks (`want`). Equal ranges end at once, so
//! the work follows the differences, not the size of the data.
//!
//! Rounds alternate strictly, each answering the last (so a lost frame is recovered by
//! sending the last round again on a lossy transport). When both sides have nothing left to
//! describe, the one that notices says `done`. Each side then sends, through the ordinary
//! `changes` stream read from the start, only the rows it marked, plus everything newer than
//! the snapshot it indexed.

use super::limits::{
    FANOUT, FINGERPRINT_BYTES, HASH_BYTES, INLINE_ROWS, LEAF_ROWS, LISTED_ROW_BYTES,
    RANGES_PER_ROUND_MAX, RECONCILE_ROWS_MAX, ROWS_RATIO_MAX, SEND_ROWS_MAX, WANTED_ROW_BYTES,
    WANTS_PER_ROUND_MAX,
};
use super::message::{
    check_count, check_length, ErrorCode, FrameError, RangePart, RangeSplit, Reconcile,
};
use crate::error::Result;
use crate::replica::Replica;
use crate::rules::digest::Digest;
use crate::sync::fingerprint::{Fingerprint, HashRange, IndexedRow, RowFilter, RowIndex};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

/// What reconciliation decided this side sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything, from the start: the conversation fell back to a full exchange.
    Everything,
    /// The marked rows among changes at or below the snapshot compared, and every change
    /// above it.
    Rows(Arc<RowFilter>),
}

/// Counters for status displays, tests and benchmarks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileStats {
    /// Rounds this side sent.
    pub rounds_sent: u32,
    /// Ranges this side described.
    pub ranges_sent: u64,
    /// Rows this side listed.
    pub rows_listed: u64,
    /// Rows this side marked to send.
    pub rows_to_send: u64,
    /// Rows this side asked for.
    pub rows_wanted: u64,
    /// Whether the sides fell back to sending everything.
    pub fallback: bool,
}

/// Whether reconciling pays for sides holding `a` and `b` rows.
pub(crate) fn worth_reconciling(a: u64, b: u64) -> bool {
    let (low, high) = (a.min(b), a.max(b));
    low > 0 && high <= RECONCILE_ROWS_MAX && low.saturating_mul(ROWS_RATIO_MAX) >= high
}

/// Checks the shape of a received round (sizes and lengths); content is checked as it is used.
pub(crate) fn check_round(round: &Reconcile) -> std::result::Result<(), FrameError> {
    if let Some(digest) = &round.digest {
        check_length("a round's digest", digest, HASH_BYTES)?;
    }
    check_count("a round's ranges", round.ranges.len(), RANGES_PER_ROUND_MAX)?;
    if !round.want.len().is_multiple_of(WANTED_ROW_BYTES) {
        return Err(FrameError::new(
            ErrorCode::WrongLength,
            format!(
                "a round's want list of {} bytes is not whole {WANTED_ROW_BYTES}-byte hashes",
                round.want.len()
            ),
        ));
    }
    let wants = round.want.len() / WANTED_ROW_BYTES;
    check_count("a round's want list", wants, WANTS_PER_ROUND_MAX)?;
    round.ranges.iter().try_for_each(check_split)
}

fn check_split(split: &RangeSplit) -> std::result::Result<(), FrameError> {
    let RangeSplit(first, last, parts) = split;
    let malformed = |what: &str| FrameError::new(ErrorCode::MalformedRound, what.to_string());
    if first > last {
        return Err(malformed("a range ends before it starts"));
    }
    if parts.is_empty() {
        return Err(malformed("a range split into no parts"));
    }
    check_count("a range's parts", parts.len(), FANOUT)?;
    for RangePart(count, fingerprint, rows) in parts {
        match (fingerprint, rows) {
            (Some(f), None) => check_length("a part's fingerprint", f, FINGERPRINT_BYTES)?,
            (None, Some(r)) => {
                if *count > LEAF_ROWS {
                    return Err(FrameError::new(
                        ErrorCode::FieldTooLong,
                        format!("a listed part holds {count} rows, over the limit of {LEAF_ROWS}"),
                    ));
                }
                if r.len() as u64 != count * LISTED_ROW_BYTES {
                    return Err(FrameError::new(
                        ErrorCode::WrongLength,
                        format!(
                            "a part lists {count} rows in {} bytes, not {}",
                            r.len(),
                            count * LISTED_ROW_BYTES
                        ),
                    ));
                }
            }
            _ => return Err(malformed("a range part is neither a summary nor rows")),
        }
    }
    Ok(())
}

/// One side's reconciliation state.
pub(crate) struct Reconciler {
    initiator: bool,
    index: Option<RowIndex>,
    /// Ranges to describe to the other side.
    pending: VecDeque<RangeSplit>,
    /// Row hashes to ask the other side for.
    wants: Vec<u64>,
    /// Ranges this side summarised and the other side has not answered yet: the only ranges
    /// it may send back (each once), so that a peer cannot make this side walk or queue
    /// ranges it never offered.
    open: HashSet<(u64, u64)>,
    to_send: HashSet<u64>,
    send_everything: bool,
    /// The round number expected next from the other side.
    expect: u32,
    /// The last round sent, kept to send again if it or its answer is lost.
    last_sent: Option<Vec<u8>>,
    last_sent_round: u32,
    last_sent_ms: u64,
    outcome: Option<Outcome>,
    finished: bool,
    /// What this side announced in its opening round (1 or 2).
    local: Option<LocalState>,
    stats: ReconcileStats,
}

/// What went wrong with a received round.
pub(crate) enum RoundError {
    /// The round breaks a rule of the protocol.
    Bad(String),
    /// A local failure (the database).
    Local(crate::Error),
}

impl From<crate::Error> for RoundError {
    fn from(error: crate::Error) -> Self {
        RoundError::Local(error)
    }
}

impl Reconciler {
    /// A reconciler; the initiator's first round (its row count) is returned to send.
    pub(crate) fn start(
        replica: &Replica,
        initiator: bool,
    ) -> Result<(Reconciler, Option<Reconcile>)> {
        let mut reconciler = Reconciler {
            initiator,
            index: None,
            pending: VecDeque::new(),
            wants: Vec::new(),
            // The initiator is answered first with the whole space, split.
            open: if initiator {
                HashSet::from([(HashRange::ALL.first, HashRange::ALL.last)])
            } else {
                HashSet::new()
            },
            to_send: HashSet::new(),
            send_everything: false,
            expect: if initiator { 2 } else { 1 },
            last_sent: None,
            last_sent_round: 0,
            last_sent_ms: 0,
            outcome: None,
            finished: false,
            local: None,
            stats: ReconcileStats::default(),
        };
        let first = if initiator {
            let local = LocalState::read(replica)?;
            reconciler.local = Some(local);
            Some(local.announce(reconciler.round(1, Vec::new(), false, false)))
        } else {
            None
        };
        Ok((reconciler, first))
    }

    /// The outcome, once, when reconciliation is over for this side.
    pub(crate) fn take_outcome(&mut self) -> Option<Outcome> {
        self.outcome.take()
    }

    /// Whether reconciliation is over for this side.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// Counters so far.
    pub(crate) fn stats(&self) -> &ReconcileStats {
        &self.stats
    }

    /// Remembers the frame of the round just sent, to send again on a lossy transport.
    pub(crate) fn sent(&mut self, round: u32, frame: Vec<u8>, now_ms: u64) {
        self.last_sent = Some(frame);
        self.last_sent_round = round;
        self.last_sent_ms = now_ms;
    }

    /// Sends the last round again (a timer fired on a lossy transport).
    pub(crate) fn resent(&mut self, now_ms: u64) {
        self.last_sent_ms = now_ms;
    }

    /// When the last round was sent and its frame, while an answer is awaited.
    pub(crate) fn awaiting(&self) -> Option<(u64, &[u8])> {
        match (self.finished, &self.last_sent) {
            (false, Some(frame)) => Some((self.last_sent_ms, frame)),
            _ => None,
        }
    }

    /// The last round sent, to answer a repeated round with (on a lossy transport).
    pub(crate) fn last_sent(&self) -> Option<&[u8]> {
        self.last_sent.as_deref()
    }

    /// Takes in a round and says what to answer.
    pub(crate) fn on_round(
        &mut self,
        replica: &Replica,
        round: Reconcile,
    ) -> std::result::Result<RoundReply, RoundError> {
        if round.round.checked_add(2) == Some(self.expect) {
            // The last round again: its answer was lost, or it is a duplicate. Answer again
            // only if it was answered (a round that ended reconciliation was not), so that two
            // duplicates never keep each other going.
            return Ok(
                if round.round.checked_add(1) == Some(self.last_sent_round) {
                    RoundReply::Repeat
                } else {
                    RoundReply::Ignore
                },
            );
        }
        if round.round != self.expect || self.finished {
            // Stale or out of turn (a reordered duplicate): nothing to do.
            return Ok(RoundReply::Ignore);
        }
        self.expect = self.expect.saturating_add(2);
        let next = round.round.saturating_add(1);
        if round.round == 1 && (!round.ranges.is_empty() || !round.want.is_empty()) {
            return Err(RoundError::Bad(
                "round 1 carries the row count and nothing else".into(),
            ));
        }
        if round.fallback {
            self.finish(true);
            return Ok(RoundReply::Finished);
        }
        if let (Some(rows), None) = (round.rows, &self.index) {
            if let Some(reply) = self.open(replica, &round, rows, next)? {
                return Ok(reply);
            }
        }
        let Some(index) = self.index.take() else {
            return Err(RoundError::Bad(
                "a reconcile round before the row counts were exchanged".into(),
            ));
        };
        let result = self.take_in(&index, &round);
        self.index = Some(index);
        result?;
        if round.done {
            self.finish(false);
            return Ok(RoundReply::Finished);
        }
        let said_nothing = round.ranges.is_empty() && round.want.is_empty();
        if said_nothing && self.pending.is_empty() && self.wants.is_empty() {
            self.finish(false);
            return Ok(RoundReply::Send(self.round(next, Vec::new(), true, false)));
        }
        let ranges = self.take_pending();
        Ok(RoundReply::Send(self.round(next, ranges, false, false)))
    }

    /// Takes in the other side's opening (its row count and digest) and decides: equal
    /// digests end reconciliation; too different or too many rows, fall back; else index this
    /// side's rows. `Some` is the answer when the opening settles this round; `None` when the
    /// round's ranges are still to be taken in (the initiator, answered by round 2).
    fn open(
        &mut self,
        replica: &Replica,
        round: &Reconcile,
        theirs_rows: u64,
        next: u32,
    ) -> std::result::Result<Option<RoundReply>, RoundError> {
        let local = match self.local {
            Some(local) => local,
            None => LocalState::read(replica)?,
        };
        self.local = Some(local);
        let theirs_digest = match &round.digest {
            Some(bytes) => Some(
                Digest::from_bytes(bytes)
                    .ok_or_else(|| RoundError::Bad("a digest is 32 bytes".into()))?,
            ),
            None => None,
        };
        if theirs_digest == Some(local.digest) {
            // The same state on both sides: nothing to compare, nothing to send.
            self.finish(false);
            if round.done {
                return Ok(Some(RoundReply::Finished));
            }
            let answer = self.round(next, Vec::new(), true, false);
            return Ok(Some(RoundReply::Send(local.announce(answer))));
        }
        let index = if worth_reconciling(local.rows, theirs_rows) {
            RowIndex::build(replica, RECONCILE_ROWS_MAX as usize)?
        } else {
            None
        };
        let Some(index) = index else {
            // Not worth it, or too big to index: both sides send everything.
            self.finish(true);
            let answer = self.round(next, Vec::new(), true, true);
            return Ok(Some(RoundReply::Send(local.announce(answer))));
        };
        if self.initiator {
            self.index = Some(index);
            return Ok(None);
        }
        // The responder opens the comparison with the whole space, split.
        let split = self.describe(&index, HashRange::ALL);
        self.index = Some(index);
        let answer = self.round(next, vec![split], false, false);
        Ok(Some(RoundReply::Send(local.announce(answer))))
    }

    fn take_pending(&mut self) -> Vec<RangeSplit> {
        let count = self.pending.len().min(RANGES_PER_ROUND_MAX);
        self.pending.drain(..count).collect()
    }

    fn round(
        &mut self,
        number: u32,
        ranges: Vec<RangeSplit>,
        done: bool,
        fallback: bool,
    ) -> Reconcile {
        let count = self.wants.len().min(WANTS_PER_ROUND_MAX);
        let want: Vec<u8> = self
            .wants
            .drain(..count)
            .flat_map(u64::to_be_bytes)
            .collect();
        self.stats.rounds_sent += 1;
        self.stats.ranges_sent += ranges.len() as u64;
        Reconcile {
            round: number,
            rows: None,
            digest: None,
            ranges,
            want,
            done,
            fallback,
        }
    }

    /// Compares the other side's ranges with this side's rows; queues what to describe next.
    fn take_in(
        &mut self,
        index: &RowIndex,
        round: &Reconcile,
    ) -> std::result::Result<(), RoundError> {
        for RangeSplit(first, last, parts) in &round.ranges {
            if !self.open.remove(&(*first, *last)) {
                return Err(RoundError::Bad(format!(
                    "range {first:016x}..={last:016x} answers nothing this side described"
                )));
            }
            let range = HashRange {
                first: *first,
                last: *last,
            };
            let subranges = range.split(parts.len());
            if subranges.len() != parts.len() {
                return Err(RoundError::Bad(format!(
                    "a range of width {} cannot be split into {} parts",
                    range.width(),
                    parts.len()
                )));
            }
            for (sub, RangePart(count, fingerprint, rows)) in subranges.into_iter().zip(parts) {
                match (fingerprint, rows) {
                    (Some(fingerprint), None) => {
                        let theirs =
                            Fingerprint::from_bytes(fingerprint[..].try_into().map_err(|_| {
                                RoundError::Bad("a fingerprint is 16 bytes".into())
                            })?);
                        self.compare_summary(index, sub, *count, theirs);
                    }
                    (None, Some(rows)) => {
                        let theirs = parse_rows(sub, rows)?;
                        self.compare_rows(index, sub, &theirs);
                    }
                    _ => return Err(RoundError::Bad("a range part is a summary or rows".into())),
                }
            }
        }
        for hash in round.want.chunks_exact(8) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(hash);
            self.mark(u64::from_be_bytes(bytes));
        }
        Ok(())
    }

    fn compare_summary(
        &mut self,
        index: &RowIndex,
        range: HashRange,
        count: u64,
        theirs: Fingerprint,
    ) {
        let (mine, fingerprint) = index.summary(range);
        if mine == count && fingerprint == theirs {
            return;
        }
        if count == 0 {
            // The other side holds nothing here: all of this side's rows go.
            for row in index.rows(range) {
                if self.send_everything {
                    break;
                }
                self.mark(row.hash);
            }
            return;
        }
        let split = if mine <= LEAF_ROWS {
            self.list(index, range)
        } else {
            self.describe(index, range)
        };
        self.pending.push_back(split);
    }

    fn compare_rows(&mut self, index: &RowIndex, range: HashRange, theirs: &[ListedRow]) {
        let mine: Vec<ListedRow> = index
            .rows(range)
            .map(|row| ListedRow {
                hash: row.hash,
                fingerprint: listed_fingerprint(row.fingerprint),
            })
            .collect();
        let (mut i, mut j) = (0, 0);
        while i < mine.len() || j < theirs.len() {
            match (mine.get(i), theirs.get(j)) {
                (Some(a), Some(b)) if a.hash == b.hash => {
                    if a.fingerprint != b.fingerprint {
                        // Both hold the row, differently: each sends its own and the merge
                        // keeps the winner on both sides.
                        self.mark(a.hash);
                        self.want(b.hash);
                    }
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) if a.hash < b.hash => {
                    self.mark(a.hash);
                    i += 1;
                }
                (Some(a), None) => {
                    self.mark(a.hash);
                    i += 1;
                }
                (_, Some(b)) => {
                    self.want(b.hash);
                    j += 1;
                }
                (None, None) => break,
            }
        }
    }

    /// This side's rows in `range`, listed.
    fn list(&mut self, index: &RowIndex, range: HashRange) -> RangeSplit {
        let rows: Vec<IndexedRow> = index.rows(range).collect();
        self.stats.rows_listed += rows.len() as u64;
        RangeSplit(range.first, range.last, vec![rows_part(&rows)])
    }

    /// `range` split into [`FANOUT`] parts, each summarised or, when tiny, listed. (Listing
    /// every small part would send the rows of parts that turn out equal: with differences
    /// spread thin, nearly all of them.)
    fn describe(&mut self, index: &RowIndex, range: HashRange) -> RangeSplit {
        let parts = range
            .split(FANOUT)
            .into_iter()
            .map(|sub| {
                let (count, fingerprint) = index.summary(sub);
                if count <= INLINE_ROWS {
                    let rows: Vec<IndexedRow> = index.rows(sub).collect();
                    self.stats.rows_listed += rows.len() as u64;
                    rows_part(&rows)
                } else {
                    self.open.insert((sub.first, sub.last));
                    RangePart(count, Some(fingerprint.to_bytes().to_vec()), None)
                }
            })
            .collect();
        RangeSplit(range.first, range.last, parts)
    }

    fn mark(&mut self, hash: u64) {
        if self.send_everything {
            return;
        }
        if self.to_send.insert(hash) && self.to_send.len() > SEND_ROWS_MAX {
            // Past the bound, a list costs more than it saves: send everything.
            self.send_everything = true;
            self.to_send = HashSet::new();
        }
    }

    fn want(&mut self, hash: u64) {
        self.stats.rows_wanted += 1;
        self.wants.push(hash);
    }

    fn finish(&mut self, fallback: bool) {
        self.finished = true;
        self.stats.fallback = fallback;
        self.stats.rows_to_send = self.to_send.len() as u64;
        // The snapshot compared: the index's, or (when the digests were equal) the one the
        // digest was read in.
        let through = self
            .index
            .as_ref()
            .map(RowIndex::db_version)
            .or(self.local.map(|local| local.db_version));
        self.outcome = Some(match through {
            Some(through) if !fallback && !self.send_everything => {
                Outcome::Rows(Arc::new(RowFilter {
                    through,
                    rows: std::mem::take(&mut self.to_send),
                }))
            }
            _ => Outcome::Everything,
        });
        // The index is no longer needed: give its memory back.
        self.index = None;
        self.pending.clear();
    }
}

/// What a side announces in its opening round: its row count, and its db_version and
/// digest read in one snapshot.
#[derive(Clone, Copy)]
struct LocalState {
    rows: u64,
    db_version: u64,
    digest: Digest,
}

impl LocalState {
    fn read(replica: &Replica) -> Result<LocalState> {
        let rows = replica.row_count()?;
        let (db_version, digest) =
            replica.in_read_snapshot(|| Ok((replica.db_version()?, replica.digest()?)))?;
        Ok(LocalState {
            rows,
            db_version,
            digest,
        })
    }

    /// `round` as an opening round: with the row count and digest.
    fn announce(&self, mut round: Reconcile) -> Reconcile {
        round.rows = Some(self.rows);
        round.digest = Some(self.digest.to_bytes().to_vec());
        round
    }
}

/// What to do after a round was taken in.
pub(crate) enum RoundReply {
    /// Send this round.
    Send(Reconcile),
    /// The round was a repeat of the last one taken in: send the last answer again.
    Repeat,
    /// Nothing: the round was stale.
    Ignore,
    /// Reconciliation is over for this side, with nothing to answer.
    Finished,
}

fn rows_part(rows: &[IndexedRow]) -> RangePart {
    let mut bytes = Vec::with_capacity(rows.len() * LISTED_ROW_BYTES as usize);
    for row in rows {
        bytes.extend_from_slice(&row.hash.to_be_bytes());
        bytes.extend_from_slice(&listed_fingerprint(row.fingerprint).to_be_bytes());
    }
    RangePart(rows.len() as u64, None, Some(bytes))
}

/// The part of a row's fingerprint a listing carries.
fn listed_fingerprint(fingerprint: Fingerprint) -> u64 {
    fingerprint.0 as u64
}

/// A row as listed: its hash and the listed part of its fingerprint.
#[derive(Clone, Copy)]
struct ListedRow {
    hash: u64,
    fingerprint: u64,
}

/// Reads a listed part: rows in order, inside `range`.
fn parse_rows(range: HashRange, bytes: &[u8]) -> std::result::Result<Vec<ListedRow>, RoundError> {
    let mut rows: Vec<ListedRow> = Vec::with_capacity(bytes.len() / LISTED_ROW_BYTES as usize);
    for entry in bytes.chunks_exact(LISTED_ROW_BYTES as usize) {
        let mut hash = [0u8; 8];
        hash.copy_from_slice(&entry[..8]);
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&entry[8..]);
        let row = ListedRow {
            hash: u64::from_be_bytes(hash),
            fingerprint: u64::from_be_bytes(fingerprint),
        };
        if row.hash < range.first || row.hash > range.last {
            return Err(RoundError::Bad(
                "a listed row lies outside its range".into(),
            ));
        }
        if rows.last().is_some_and(|last| last.hash >= row.hash) {
            return Err(RoundError::Bad("listed rows are not in order".into()));
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::message::{decode_frame, encode_frame, ErrorCode, Message};

    fn round(ranges: Vec<RangeSplit>, want: Vec<u8>) -> Reconcile {
        Reconcile {
            round: 3,
            rows: None,
            digest: None,
            ranges,
            want,
            done: false,
            fallback: false,
        }
    }

    fn decodes(round: Reconcile) -> Result<(), ErrorCode> {
        decode_frame(&encode_frame(&Message::Reconcile(round)))
            .map(|_| ())
            .map_err(|e| e.code)
    }

    #[test]
    fn malformed_rounds_are_refused_when_decoded() {
        let summary = || RangePart(20, Some(vec![0; 16]), None);
        assert_eq!(
            decodes(round(vec![RangeSplit(0, 99, vec![summary()])], vec![])),
            Ok(())
        );
        use ErrorCode::{FieldTooLong, MalformedRound, WrongLength};
        let bad = [
            // More parts than the fanout.
            (
                round(vec![RangeSplit(0, 99, vec![summary(); FANOUT + 1])], vec![]),
                FieldTooLong,
            ),
            // No parts, or a range that ends before it starts.
            (
                round(vec![RangeSplit(0, 99, vec![])], vec![]),
                MalformedRound,
            ),
            (
                round(vec![RangeSplit(9, 1, vec![summary()])], vec![]),
                MalformedRound,
            ),
            // A fingerprint of the wrong size; both or neither of fingerprint and rows.
            (
                round(
                    vec![RangeSplit(
                        0,
                        9,
                        vec![RangePart(1, Some(vec![0; 15]), None)],
                    )],
                    vec![],
                ),
                WrongLength,
            ),
            (
                round(
                    vec![RangeSplit(0, 9, vec![RangePart(0, None, None)])],
                    vec![],
                ),
                MalformedRound,
            ),
            (
                round(
                    vec![RangeSplit(
                        0,
                        9,
                        vec![RangePart(1, Some(vec![0; 16]), Some(vec![]))],
                    )],
                    vec![],
                ),
                MalformedRound,
            ),
            // Rows whose bytes do not match their count, or too many rows.
            (
                round(
                    vec![RangeSplit(
                        0,
                        9,
                        vec![RangePart(2, None, Some(vec![0; 16]))],
                    )],
                    vec![],
                ),
                WrongLength,
            ),
            (
                round(
                    vec![RangeSplit(
                        0,
                        9,
                        vec![RangePart(LEAF_ROWS + 1, None, Some(vec![0; 16 * 17]))],
                    )],
                    vec![],
                ),
                FieldTooLong,
            ),
            // A want list that is not whole hashes.
            (round(vec![], vec![0; 7]), WrongLength),
            // A digest that is not 32 bytes.
            (
                Reconcile {
                    digest: Some(vec![0; 31]),
                    ..round(vec![], vec![])
                },
                WrongLength,
            ),
        ];
        for (round, code) in bad {
            assert_eq!(decodes(round.clone()), Err(code), "{round:?}");
        }
    }

    #[test]
    fn listed_rows_must_be_in_order_and_inside_their_range() {
        let range = HashRange {
            first: 10,
            last: 20,
        };
        let entry = |hash: u64| {
            let mut bytes = hash.to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0; 8]);
            bytes
        };
        assert!(parse_rows(range, &[entry(11), entry(12)].concat()).is_ok());
        assert!(parse_rows(range, &[entry(12), entry(11)].concat()).is_err());
        assert!(parse_rows(range, &[entry(12), entry(12)].concat()).is_err());
        assert!(parse_rows(range, &entry(21)).is_err());
        assert!(parse_rows(range, &entry(9)).is_err());
    }

    #[test]
    fn reconciling_pays_only_for_comparable_sizes() {
        assert!(worth_reconciling(1_000, 1_000));
        assert!(worth_reconciling(1_000, 8_000));
        assert!(!worth_reconciling(1_000, 8_001));
        assert!(!worth_reconciling(0, 10));
        assert!(!worth_reconciling(
            RECONCILE_ROWS_MAX + 1,
            RECONCILE_ROWS_MAX + 1
        ));
    }
}
