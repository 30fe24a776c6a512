//! Symbol → (partition, slot): an immutable map republished by pointer swap (RCU).
//!
//! Readers do one atomic load and never block or see half an update; writers (add/remove,
//! rare) serialise on a mutex and publish a new map.

use super::sync::lock;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Where a symbol's state lives. `generation` tells a reused slot from its previous owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymbolRef {
    pub partition: u32,
    pub slot: u32,
    pub generation: u32,
}

/// Fx hashing: symbols are short, trusted strings and the lookup is on every trade.
pub type SymbolMap = HashMap<Arc<str>, SymbolRef, rustc_hash::FxBuildHasher>;

#[derive(Debug, Default)]
pub struct Registry {
    map: ArcSwap<SymbolMap>,
    writer: Mutex<()>,
}

impl Registry {
    #[inline]
    pub fn get(&self, symbol: &str) -> Option<SymbolRef> {
        self.map.load().get(symbol).copied()
    }

    pub fn snapshot(&self) -> Arc<SymbolMap> {
        self.map.load_full()
    }

    /// Serialises writers; the map is read through [`Registry::get`] meanwhile.
    pub fn lock(&self) -> MutexGuard<'_, ()> {
        lock(&self.writer)
    }

    /// Publishes `f(current)`; hold [`Registry::lock`] around read-modify-publish.
    pub fn publish(&self, f: impl FnOnce(&mut SymbolMap)) {
        let mut next = (**self.map.load()).clone();
        f(&mut next);
        self.map.store(Arc::new(next));
    }
}
