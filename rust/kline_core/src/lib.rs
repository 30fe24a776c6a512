//! Exact Binance klines from trades.
//!
//! Where a trade enters: [`parse`]. Where a kline is made: [`aggregate`] (from trades) and
//! [`rollup`] (from finer klines). Where it leaves: [`output`]. [`replay`] joins them for
//! Binance's public-data dumps.

pub mod aggregate;
#[cfg(feature = "arrow")]
pub mod arrow;
pub mod decimal;
pub mod engine;
pub mod id_order;
pub mod interval;
pub mod kline;
pub mod output;
pub mod parse;
pub mod plausible;
pub mod replay;
pub mod rollup;
pub mod symbol;
pub mod timestamp;
pub mod trade;

pub use aggregate::{aggregate, Aggregator, Counts, KlineSink};
pub use interval::{Grid, Interval, TimeUnit};
pub use kline::{FlatRun, Kline};
pub use trade::{Skip, Trade};
