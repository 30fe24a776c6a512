//! Why the engine refused a call.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EngineError {
    #[error("no intervals configured")]
    NoIntervals,
    #[error("{0} intervals configured; at most 64")]
    TooManyIntervals(usize),
    #[error("unknown symbol {0:?}")]
    UnknownSymbol(String),
    #[error("symbol {0:?} is already added")]
    AlreadyAdded(String),
    #[error("partition {0} is full: backpressure (retry, or consume klines faster)")]
    Backpressure(usize),
    #[error("partition {0} did not answer in time")]
    Timeout(usize),
    #[error("the engine is shut down")]
    ShutDown,
    #[error("cannot start worker threads: {0}")]
    Spawn(String),
    #[error(
        "partition {0} holds max_spill closed records nobody polls: poll (or consume closed()) \
         while waiting"
    )]
    Unpolled(usize),
    #[error("bad engine setting: {0}")]
    Config(String),
    #[error(transparent)]
    Symbol(#[from] crate::symbol::SymbolError),
}
