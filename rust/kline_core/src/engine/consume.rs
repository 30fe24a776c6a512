//! The consumer side: closed records polled in budgeted batches (flat runs cut to fit),
//! acknowledged or handed back; the side outputs (holes in ids, late trades).

use super::delivery::Budget;
use super::output::{IdHole, LateTrade, Record};
use super::partition::Shared;
use super::sync::lock;
use super::Engine;
use crate::aggregate::split_run;
use crossbeam_queue::ArrayQueue;

impl Engine {
    /// Closed records (redelivered ones first) worth up to `max` klines, and the token that
    /// acknowledges them. With `expand`, a flat run is worth its periods: one longer than
    /// what is left is cut, its rest handed out next, so no poll expands without bound.
    /// Every record a worker has sealed (all of them after `sync`, or after shutdown) is seen.
    pub fn poll(&self, max: usize, expand: bool) -> (u64, Vec<Record>) {
        let mut delivery = lock(&self.delivery);
        let grids = &self.grids;
        let size = |r: &Record| match r {
            Record::FlatRun { interval, run, .. } if expand => {
                grids[*interval as usize].periods_between(run.start, run.end).max(1) as usize
            }
            _ => 1,
        };
        let cut = |r: Record, n: usize| match r {
            Record::FlatRun { symbol, interval, run, revision, gap } => {
                let (head, rest) = split_run(&grids[interval as usize], &run, n as i64);
                let piece =
                    |run| Record::FlatRun { symbol: symbol.clone(), interval, run, revision, gap };
                (piece(head), rest.map(piece))
            }
            whole => (whole, None),
        };
        let mut out = Vec::new();
        let mut turn = 0;
        let shared = &self.shared;
        let from = std::cell::Cell::new(0);
        delivery.take(
            max,
            &mut out,
            Budget { size: &size, cut: &cut },
            || {
                // Round robin over partitions so one busy partition does not starve the others.
                for _ in 0..shared.len() {
                    let p = turn % shared.len();
                    turn += 1;
                    if let Some(chunk) = shared[p].take_closed() {
                        from.set(p);
                        return Some(chunk);
                    }
                }
                None
            },
            |chunk| {
                let _ = shared[from.get()].spare.push(chunk); // full: dropped, allocated anew
            },
        );
        let token = delivery.register(&out);
        (token, out)
    }

    /// The consumer has durably handled a polled batch: it will not come again.
    pub fn ack(&self, token: u64) -> bool {
        lock(&self.delivery).ack(token)
    }

    /// The consumer could not handle a polled batch: it comes again on the next poll.
    pub fn nack(&self, token: u64) -> bool {
        let put_back = lock(&self.delivery).nack(token);
        if put_back {
            self.notifier.signal(); // a waiting consumer should take them again
        }
        put_back
    }

    /// Holes found in aggTrade ids (with `detect_id_gaps`), oldest first, up to `max`.
    pub fn poll_gaps(&self, max: usize) -> Vec<IdHole> {
        self.drain_side(max, |s| &s.holes)
    }

    /// Late trades (bucket already closed), up to `max`.
    pub fn poll_late(&self, max: usize) -> Vec<LateTrade> {
        self.drain_side(max, |s| &s.late)
    }

    /// Up to `max` items of one side output, partition after partition.
    fn drain_side<T>(&self, max: usize, queue: impl Fn(&Shared) -> &ArrayQueue<T>) -> Vec<T> {
        let mut out = Vec::new();
        for shared in &self.shared {
            while out.len() < max {
                match queue(shared).pop() {
                    Some(item) => out.push(item),
                    None => break,
                }
            }
        }
        out
    }
}
