//! How producers wake a parked worker without a lost wake-up.
//!
//! Protocol (a Dekker pair, checked by the loom model in `tests/loom_doorbell.rs`):
//! producer: publish work, fence, then if `sleeping` unpark the worker;
//! worker: set `sleeping`, fence, then park only if no work is visible.
//! One of the two always sees the other's write.

use super::sync::{fence, park_timeout, AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

type Unpark = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
pub struct Doorbell {
    sleeping: AtomicBool,
    unpark: OnceLock<Unpark>,
}

impl Doorbell {
    pub fn new() -> Self {
        Doorbell { sleeping: AtomicBool::new(false), unpark: OnceLock::new() }
    }

    /// How to unpark the thread `sleep` runs on; set once, before any `ring` matters.
    pub fn attach(&self, unpark: impl Fn() + Send + Sync + 'static) {
        let _ = self.unpark.set(Box::new(unpark));
    }

    /// Producer side, after publishing work.
    #[inline]
    pub fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            self.force();
        }
    }

    /// Worker side: parks for at most `timeout` unless `has_work()` already says otherwise.
    pub fn sleep(&self, has_work: impl Fn() -> bool, timeout: Duration) {
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !has_work() {
            park_timeout(timeout);
        }
        self.sleeping.store(false, Ordering::SeqCst);
    }

    /// Wakes the worker whatever it is doing (shutdown).
    pub fn force(&self) {
        if let Some(unpark) = self.unpark.get() {
            unpark();
        }
    }
}
