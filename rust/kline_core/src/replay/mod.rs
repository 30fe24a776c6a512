//! Binance public-data aggTrades dumps → Binance kline CSV files.
//!
//! In bounded memory, input read in blocks of whole lines. Symbols are independent: when the
//! input holds several of a like size, each thread replays whole symbols (read, parse,
//! aggregate, write) side by side. Otherwise a pipeline: one reader cuts the input into
//! blocks, parser threads turn blocks into trades, and the calling thread puts blocks back in
//! order and aggregates them, one symbol at a time, writing klines as they close.

use crate::aggregate::{partial_edges, Aggregator, Counts, FlatRunTooLong};
use crate::decimal::QuoteRule;
use crate::interval::{epoch_3d_warning, Grid, Interval, TimeUnit};
use crate::output::{CsvSink, SinkError, StagedFiles, KLINE_CSV_HEADER};
use crate::parse::csv::{header, names_base_qty, parse_block, Layout};
use crate::parse::source::{
    content_len, date_span_of_file_name, for_each_csv, symbol_from_file_name,
};
use crate::parse::BadRow;
use crate::plausible::{Implausible, TimeLimits};
use crate::symbol::symbol_name;
use crate::trade::Trade;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use thiserror::Error;

mod read;
mod run;
mod write;

use read::{parse, parse_worker, plan, read_source, Block, Parsed, Pools};
use write::Consumer;

/// Bytes per block handed to a parser: big enough to amortise, small enough to bound memory.
const BLOCK: usize = 1 << 20;
/// A line longer than this is refused instead of growing the buffer without end.
const MAX_LINE: usize = 64 << 20;
/// Bad rows kept verbatim in the summary (all are counted).
const BAD_EXAMPLES: usize = 20;

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub intervals: Vec<Interval>,
    pub out_dir: PathBuf,
    /// Overrides the symbol taken from each file name (all inputs are then one symbol).
    pub symbol: Option<String>,
    pub tz_offset_ms: i64,
    /// Open time (UTC ms) of a 3d kline of the symbol, usually its listing day; `None`: epoch.
    pub anchor_3d_ms: Option<i64>,
    /// Count and report bad rows instead of stopping at the first.
    pub skip_bad: bool,
    /// Threads (0 = one per usable core): whole symbols side by side when several of like
    /// size are given, else parsers of one symbol's blocks.
    pub threads: usize,
    pub progress: bool,
    /// A trade further than this (ms) after its symbol's previous one is refused unless the
    /// next trade follows it (a halt); `None`: not checked.
    pub max_jump_ms: Option<i64>,
    /// How trades add to quote volume: spot and USD-M per trade, COIN-M exact.
    pub quote_rule: QuoteRule,
    /// Start each output file with Binance's column names ([`KLINE_CSV_HEADER`]).
    pub header: bool,
}

/// Default jump bound of a replay: a week. Longer halts are confirmed by the trade after.
pub const DEFAULT_MAX_JUMP_MS: i64 = 7 * crate::interval::DAY_MS;

impl ReplayOptions {
    pub fn new(intervals: Vec<Interval>, out_dir: impl Into<PathBuf>) -> Self {
        ReplayOptions {
            intervals,
            out_dir: out_dir.into(),
            symbol: None,
            tz_offset_ms: 0,
            anchor_3d_ms: None,
            skip_bad: false,
            threads: 0,
            progress: false,
            max_jump_ms: Some(DEFAULT_MAX_JUMP_MS),
            quote_rule: QuoteRule::PerTrade,
            header: false,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ReplaySummary {
    pub files: u64,
    pub bytes: u64,
    /// Data rows read (good and bad).
    pub rows: u64,
    pub counts: Counts,
    pub bad_rows: u64,
    pub bad_examples: Vec<BadRow>,
    pub klines_written: u64,
    pub seconds: f64,
    pub outputs: Vec<PathBuf>,
    pub warnings: Vec<String>,
    /// First or last periods the input does not cover whole (see `partial_edges`): their
    /// lines are written as Binance would print them were nothing else traded, unmarked in
    /// the CSV.
    pub partial: Vec<PartialPeriod>,
}

/// A period at an edge of the input, with trades possibly outside the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialPeriod {
    pub symbol: String,
    pub interval: Interval,
    pub open_time: i64,
}

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{0} (pass skip_bad / --skip-bad to count bad rows and go on)")]
    BadRow(BadRow),
    #[error("cannot tell the symbol of {0}: name it like BTCUSDT-aggTrades-2020-01-02.csv or give the symbol")]
    NoSymbol(String),
    #[error("{symbol}: {file} has {found} timestamps but earlier input has {expected}; replay them separately")]
    MixedUnits { symbol: String, file: String, found: &'static str, expected: &'static str },
    #[error(
        "{file}: aggTrade {id} at {time}: {reason} (pass skip_bad / --skip-bad to count such \
         trades and go on{hint})"
    )]
    Implausible { file: String, id: i64, time: i64, reason: Implausible, hint: &'static str },
    #[error("{symbol} {interval}: {source}", interval = .source.interval)]
    FlatRunTooLong { symbol: String, source: FlatRunTooLong },
    #[error("no input files")]
    NoInput,
    #[error(transparent)]
    Symbol(#[from] crate::symbol::SymbolError),
    #[error("no intervals given")]
    NoIntervals,
    #[error(
        "{symbol}: both aggTrades and trades inputs (their ids differ); replay them separately"
    )]
    MixedKinds { symbol: String },
    #[error(
        "{file}: COIN-M trades (its header names base_qty): their quote volume is base-asset \
         volume, contracts x size / price; give the symbol's contract size (exchangeInfo's \
         contractSize: 100 for BTCUSD_*, 10 for the others) as --contract-size / \
         quote_rule=\"contracts:<size>\""
    )]
    ContractSizeNeeded { file: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ReplayError + '_ {
    move |source| ReplayError::Io { path: path.display().to_string(), source }
}

fn progress_bar(total: u64, show: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !show || !io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    );
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar
}

/// Replays aggTrades dumps (files or directories of `.csv` / `.zip`) into
/// `out_dir/<SYMBOL>-<interval>.csv`, one line per period from the first trade's to the last's.
pub fn replay(inputs: &[PathBuf], opts: &ReplayOptions) -> Result<ReplaySummary, ReplayError> {
    let started = Instant::now();
    if opts.intervals.is_empty() {
        return Err(ReplayError::NoIntervals);
    }
    let files = plan(inputs, opts.symbol.as_deref())?;
    std::fs::create_dir_all(&opts.out_dir).map_err(io_err(&opts.out_dir))?;
    let total = if opts.progress {
        files.iter().map(|(_, p)| content_len(p).unwrap_or(0)).sum()
    } else {
        0
    };
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let mut consumer = Consumer::new(opts, &files, progress_bar(total, opts.progress));
    if let Some(warning) = epoch_3d_warning(&opts.intervals, opts.anchor_3d_ms) {
        consumer.summary.warnings.push(format!("{warning} (--anchor-3d YYYY-MM-DD)"));
    }
    match run::symbols_side_by_side(&files, threads) {
        Some(jobs) => run::by_symbol(&mut consumer, &jobs, threads)?,
        None => run::pipelined(&mut consumer, threads)?,
    }
    consumer.staged.commit().map_err(|(path, e)| io_err(&path)(e))?;
    consumer.bar.finish_and_clear();
    let mut summary = std::mem::take(&mut consumer.summary);
    if summary.counts.applied == 0 {
        let n = files.len();
        let files = format!("{n} file{}", if n == 1 { "" } else { "s" });
        summary.warnings.push(if summary.rows == 0 {
            format!("no trades read from {files}: no klines written")
        } else {
            format!(
                "none of the {} rows read from {files} was applied: no klines written",
                summary.rows
            )
        });
    }
    if summary.counts.late > 0 {
        // Dumps are in time order: late trades mean a wrong time (or a jump let through).
        summary.warnings.push(format!(
            "{} trades were late (their bucket had closed): the input is not in time order, or \
             an earlier trade's time is wrong",
            summary.counts.late
        ));
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

#[cfg(test)]
pub(crate) mod tests;
