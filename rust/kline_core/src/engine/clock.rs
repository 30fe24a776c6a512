//! The wall clock that closes quiet buckets, injectable so tests are deterministic.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in the engine's time unit (ms unless configured otherwise).
pub trait Clock: Send + Sync {
    fn now(&self) -> i64;
}

/// The system clock in ms (or µs when `micros`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock {
    pub micros: bool,
}

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        if self.micros {
            d.as_micros() as i64
        } else {
            d.as_millis() as i64
        }
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    pub fn new(start: i64) -> Self {
        ManualClock { now: AtomicI64::new(start) }
    }

    pub fn set(&self, t: i64) {
        self.now.store(t, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}
