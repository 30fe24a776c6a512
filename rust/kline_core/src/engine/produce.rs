//! The producer side: routing trades by symbol to their partition's ring, with bounded
//! waits for room (backpressure past them), and websocket frames parsed on the way.

use super::metrics::bump;
use super::partition::Item;
use super::registry::SymbolRef;
use super::{Engine, EngineError};
use crate::parse::json::{parse_ws_message, Message};
use crate::symbol::symbol_name;
use crate::trade::Trade;
use crossbeam_utils::Backoff;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// What one `push_raw` call did with its frames.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawReport {
    /// Frames consumed from the front of the input (all of them unless backpressure stopped
    /// the call): the caller retries from here.
    pub consumed: usize,
    pub trades: usize,
    pub unknown_symbol: usize,
    pub malformed: usize,
    pub other_events: usize,
    pub backpressure: bool,
    /// The first few malformed frames' reasons.
    pub errors: Vec<String>,
}

const MAX_ERRORS_PER_REPORT: usize = 8;
/// Frames parsed before their trades are enqueued (one ring item per symbol per chunk).
const RAW_CHUNK: usize = 1024;

/// How long a worker may sit at its spill bound before a caller waiting on it is told why.
pub(super) const SPILL_STALL: Duration = Duration::from_secs(1);
/// How long a control request waits for room in a full ring before reporting backpressure.
const CONTROL_ROOM_WAIT: Duration = Duration::from_secs(10);

impl Engine {
    /// Pushes an item, waiting up to `push_wait` for room.
    fn enqueue(&self, partition: usize, item: Item) -> Result<(), Item> {
        let shared = &self.shared[partition];
        let mut item = match shared.ring.push(item) {
            Ok(()) => {
                shared.wake();
                return Ok(());
            }
            Err(item) => item,
        };
        shared.wake();
        let deadline = Instant::now() + self.cfg.push_wait;
        let backoff = Backoff::new();
        loop {
            if self.shutdown.load(Relaxed) {
                return Err(item);
            }
            if backoff.is_completed() {
                std::thread::sleep(Duration::from_micros(50));
            } else {
                backoff.snooze();
            }
            item = match shared.ring.push(item) {
                Ok(()) => {
                    shared.wake();
                    return Ok(());
                }
                Err(item) => item,
            };
            shared.wake();
            if Instant::now() >= deadline {
                bump(&self.producer.backpressure);
                return Err(item);
            }
        }
    }

    /// Enqueues trades: a full ring is waited out for `push_wait` at most, then backpressure
    /// (the producer's to handle: retry, or consume faster).
    fn enqueue_or_fail(&self, partition: usize, item: Item) -> Result<(), EngineError> {
        if self.shutdown.load(Relaxed) {
            return Err(EngineError::ShutDown);
        }
        self.enqueue(partition, item).map_err(|_| EngineError::Backpressure(partition))
    }

    /// Enqueues a control request (sync, add, remove, …). A full ring is waited out, since
    /// the worker empties it (trades pushed just before fill it for a moment): backpressure
    /// only after CONTROL_ROOM_WAIT, and `Unpolled` at once when the worker is stopped at its
    /// spill bound for SPILL_STALL (only a poll frees it).
    pub(super) fn enqueue_control(&self, partition: usize, item: Item) -> Result<(), EngineError> {
        let start = Instant::now();
        let mut stuck_since: Option<Instant> = None;
        let mut item = item;
        loop {
            if self.shutdown.load(Relaxed) {
                return Err(EngineError::ShutDown);
            }
            item = match self.enqueue(partition, item) {
                Ok(()) => return Ok(()),
                Err(item) => item,
            };
            let now = Instant::now();
            if self.shared[partition].spilled.load(Relaxed) >= self.cfg.max_spill {
                if now - *stuck_since.get_or_insert(now) >= SPILL_STALL {
                    return Err(EngineError::Unpolled(partition));
                }
            } else {
                stuck_since = None;
            }
            if now - start >= CONTROL_ROOM_WAIT {
                return Err(EngineError::Backpressure(partition));
            }
        }
    }

    fn route(&self, symbol: &str) -> Option<SymbolRef> {
        if let Some(r) = self.registry.get(symbol) {
            return Some(r);
        }
        // Off the hot path: a name in another case, or one that is no symbol at all.
        let Ok(symbol) = symbol_name(symbol) else {
            bump(&self.producer.unknown_symbol);
            return None;
        };
        let symbol = &*symbol;
        if let Some(r) = self.registry.get(symbol) {
            return Some(r);
        }
        if self.cfg.auto_add && self.add_symbol(symbol, None).is_ok() {
            return self.registry.get(symbol);
        }
        bump(&self.producer.unknown_symbol);
        None
    }

    /// Pushes one trade of `symbol`.
    pub fn push_trade(&self, symbol: &str, trade: Trade) -> Result<(), EngineError> {
        let r = self.route(symbol).ok_or_else(|| EngineError::UnknownSymbol(symbol.into()))?;
        let item = Item::Trade { slot: r.slot, generation: r.generation, trade };
        self.enqueue_or_fail(r.partition as usize, item)
    }

    /// Pushes a batch of one symbol's trades (in id order) as one ring item.
    pub fn push_trades(&self, symbol: &str, trades: Vec<Trade>) -> Result<(), EngineError> {
        let r = self.route(symbol).ok_or_else(|| EngineError::UnknownSymbol(symbol.into()))?;
        let item = Item::Batch { slot: r.slot, generation: r.generation, trades };
        self.enqueue_or_fail(r.partition as usize, item)
    }

    /// Parses Binance websocket frames (aggTrade / trade, plain or combined-stream) and routes
    /// their trades, one ring item per symbol per chunk of frames. Bad frames are counted with
    /// their reason; unknown symbols are counted. On backpressure the report's `consumed` is
    /// where the caller resumes: trades of that chunk already enqueued come again and are
    /// skipped as duplicates by id.
    /// A shut-down engine refuses the call (`ShutDown`) instead of reporting backpressure
    /// that would never clear.
    pub fn push_raw<'a>(
        &self,
        frames: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<RawReport, EngineError> {
        if self.shutdown.load(Relaxed) {
            return Err(EngineError::ShutDown);
        }
        let mut done = RawReport::default();
        let mut chunk = RawReport::default();
        let mut batches: Vec<(SymbolRef, Vec<Trade>)> = Vec::new();
        let mut slots: rustc_hash::FxHashMap<(u32, u32), usize> = Default::default();
        for frame in frames {
            match parse_ws_message(frame) {
                Ok(Message::Trade { symbol, trade }) => match self.route(&symbol) {
                    Some(r) => {
                        let k = *slots.entry((r.partition, r.slot)).or_insert_with(|| {
                            batches.push((r, Vec::new()));
                            batches.len() - 1
                        });
                        batches[k].1.push(trade);
                        chunk.trades += 1;
                    }
                    None => chunk.unknown_symbol += 1,
                },
                Ok(Message::Other { .. }) => chunk.other_events += 1,
                Err(reason) => {
                    chunk.malformed += 1;
                    if done.errors.len() + chunk.errors.len() < MAX_ERRORS_PER_REPORT {
                        chunk.errors.push(reason);
                    }
                }
            }
            chunk.consumed += 1;
            if chunk.consumed == RAW_CHUNK
                && !self.flush_chunk(&mut batches, &mut slots, &mut chunk, &mut done)
            {
                return self.unless_shut_down(done);
            }
        }
        self.flush_chunk(&mut batches, &mut slots, &mut chunk, &mut done);
        self.unless_shut_down(done)
    }

    fn unless_shut_down(&self, report: RawReport) -> Result<RawReport, EngineError> {
        if report.backpressure && self.shutdown.load(Relaxed) {
            return Err(EngineError::ShutDown);
        }
        Ok(report)
    }

    /// Enqueues a chunk's batches and folds its counts into `done`; false on backpressure.
    fn flush_chunk(
        &self,
        batches: &mut Vec<(SymbolRef, Vec<Trade>)>,
        slots: &mut rustc_hash::FxHashMap<(u32, u32), usize>,
        chunk: &mut RawReport,
        done: &mut RawReport,
    ) -> bool {
        slots.clear();
        for (r, mut trades) in batches.drain(..) {
            let item = if trades.len() == 1 {
                Item::Trade {
                    slot: r.slot,
                    generation: r.generation,
                    trade: trades.pop().expect("one"),
                }
            } else {
                Item::Batch { slot: r.slot, generation: r.generation, trades }
            };
            if self.shutdown.load(Relaxed) || self.enqueue(r.partition as usize, item).is_err() {
                done.backpressure = true;
                *chunk = RawReport::default();
                return false;
            }
        }
        let p = &self.producer;
        p.messages.fetch_add(chunk.consumed as u64, Relaxed);
        p.malformed.fetch_add(chunk.malformed as u64, Relaxed);
        p.other_events.fetch_add(chunk.other_events as u64, Relaxed);
        done.consumed += chunk.consumed;
        done.trades += chunk.trades;
        done.unknown_symbol += chunk.unknown_symbol;
        done.malformed += chunk.malformed;
        done.other_events += chunk.other_events;
        done.errors.append(&mut chunk.errors);
        *chunk = RawReport::default();
        true
    }
}
