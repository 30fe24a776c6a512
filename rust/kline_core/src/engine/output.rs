//! What leaves a partition: closed klines and flat runs, and late trades on the side.

use super::table::SlotValue;
use crate::kline::{FlatRun, Kline};
use crate::trade::Trade;
use std::sync::Arc;

/// A final record for one symbol and interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A closed kline. `revision` > 0 re-emits an amended kline (late policy `Amend`).
    Kline { symbol: Arc<str>, interval: u16, kline: Kline, revision: u32, gap: bool },
    /// Empty periods `[run.start, run.end)` at `run.price`, expanded by readers.
    FlatRun { symbol: Arc<str>, interval: u16, run: FlatRun, revision: u32, gap: bool },
}

impl Record {
    pub fn symbol(&self) -> &Arc<str> {
        match self {
            Record::Kline { symbol, .. } | Record::FlatRun { symbol, .. } => symbol,
        }
    }

    pub fn interval(&self) -> u16 {
        match self {
            Record::Kline { interval, .. } | Record::FlatRun { interval, .. } => *interval,
        }
    }
}

/// A trade whose bucket had already closed (late policy `Drop`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateTrade {
    pub symbol: Arc<str>,
    pub trade: Trade,
}

/// aggTrade ids that never arrived: the symbol is now in a gap (feed down) until the missing
/// ids are backfilled and `feed_up` is called. `from_id..=to_id` are missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdHole {
    pub symbol: Arc<str>,
    pub from_id: i64,
    pub to_id: i64,
    /// Time of the last trade before the hole (the gap's start).
    pub since: i64,
}

/// One slot in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotSnapshot {
    pub symbol: Arc<str>,
    pub interval: u16,
    pub value: SlotValue,
}

/// A symbol's last applied aggTrade id: replay resumes after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub symbol: Arc<str>,
    pub last_id: i64,
}

/// The slots and checkpoints of one partition that changed since its last acknowledged
/// snapshot (or that an unacknowledged one carried).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionSnapshot {
    pub partition: usize,
    pub seq: u64,
    pub slots: Vec<SlotSnapshot>,
    pub checkpoints: Vec<Checkpoint>,
}
