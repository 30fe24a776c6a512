//! Binance public-data aggTrades dumps → Binance kline CSV files.
//!
//! A pipeline in bounded memory: one reader cuts the input into blocks of whole lines, parser
//! threads turn blocks into trades, and the calling thread puts blocks back in order and
//! aggregates them, one symbol at a time, writing klines as they close.

use crate::aggregate::{partial_edges, Aggregator, Counts, FlatRunTooLong};
use crate::decimal::QuoteRule;
use crate::interval::{epoch_3d_warning, Grid, Interval, TimeUnit};
use crate::output::{CsvSink, SinkError, StagedFiles};
use crate::parse::csv::{header, parse_block, Layout};
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
    /// Parser threads; 0 = one per usable core.
    pub threads: usize,
    pub progress: bool,
    /// A trade further than this (ms) after its symbol's previous one is refused unless the
    /// next trade follows it (a halt); `None`: not checked.
    pub max_jump_ms: Option<i64>,
    /// How trades add to quote volume: spot and USD-M per trade, COIN-M exact.
    pub quote_rule: QuoteRule,
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
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ReplayError + '_ {
    move |source| ReplayError::Io { path: path.display().to_string(), source }
}

/// Input files in replay order: grouped by symbol, then by name (Binance names sort by date).
fn plan(inputs: &[PathBuf], symbol: Option<&str>) -> Result<Vec<(String, PathBuf)>, ReplayError> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let entries = std::fs::read_dir(input).map_err(io_err(input))?;
            for entry in entries {
                let p = entry.map_err(io_err(input))?.path();
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
                if p.is_file()
                    && (ext.eq_ignore_ascii_case("csv") || ext.eq_ignore_ascii_case("zip"))
                {
                    files.push(p);
                }
            }
        } else {
            files.push(input.clone());
        }
    }
    let mut planned = files
        .into_iter()
        .map(|p| {
            let sym = match symbol {
                // The name becomes a file name in the output directory: [A-Z0-9_] only.
                Some(s) => symbol_name(s)?.into_owned(),
                None => symbol_from_file_name(&p)
                    .ok_or_else(|| ReplayError::NoSymbol(p.display().to_string()))?,
            };
            Ok((sym, p))
        })
        .collect::<Result<Vec<_>, ReplayError>>()?;
    planned.sort_by(|a, b| (&a.0, a.1.file_name()).cmp(&(&b.0, b.1.file_name())));
    planned.dedup();
    for pair in planned.windows(2) {
        let kind = |p: &Path| p.file_name()?.to_str().and_then(Layout::of_file_name);
        let (a, b) = (kind(&pair[0].1), kind(&pair[1].1));
        if pair[0].0 == pair[1].0 && a.is_some() && b.is_some() && a != b {
            return Err(ReplayError::MixedKinds { symbol: pair[0].0.clone() });
        }
    }
    if planned.is_empty() {
        return Err(ReplayError::NoInput);
    }
    Ok(planned)
}

/// Whole lines of one source, in order; `seq` orders blocks across all sources.
struct Block {
    seq: u64,
    file: usize,
    source: Arc<str>,
    /// First block of its source: line numbering restarts.
    first: bool,
    /// Lines skipped at the start (a header).
    skipped: u64,
    layout: Layout,
    data: Vec<u8>,
    skip_bytes: usize,
}

struct Parsed {
    seq: u64,
    file: usize,
    source: Arc<str>,
    first: bool,
    skipped: u64,
    lines: u64,
    bytes: u64,
    trades: Vec<Trade>,
    bad: Vec<(u64, String)>,
}

/// Fills `buf` up to `want` bytes; returns true at end of input.
fn fill(r: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    let start = buf.len();
    let got = r.take((want.saturating_sub(start)) as u64).read_to_end(buf)?;
    Ok(buf.len() < want || (got == 0 && start < want))
}

/// Buffers handed back by their last user, so steady state allocates (and page-faults) nothing.
struct Pools {
    bytes: (Sender<Vec<u8>>, Receiver<Vec<u8>>),
    trades: (Sender<Vec<Trade>>, Receiver<Vec<Trade>>),
}

impl Pools {
    fn new() -> Self {
        Pools { bytes: crossbeam_channel::unbounded(), trades: crossbeam_channel::unbounded() }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut b = self.bytes.1.try_recv().unwrap_or_else(|_| Vec::with_capacity(BLOCK + 4096));
        b.clear();
        b
    }

    fn trades(&self) -> Vec<Trade> {
        let mut t = self.trades.1.try_recv().unwrap_or_else(|_| Vec::with_capacity(BLOCK / 48));
        t.clear();
        t
    }
}

/// Reads one source (a file, or a zip entry) into blocks of whole lines. `kind`: what its file
/// name says it holds; without it, its header says, else aggTrades.
#[allow(clippy::too_many_arguments)]
fn read_source(
    name: &str,
    kind: Option<Layout>,
    r: &mut dyn Read,
    file: usize,
    seq: &mut u64,
    tx: &Sender<Block>,
    pools: &Pools,
) -> io::Result<()> {
    let source: Arc<str> = name.into();
    let mut carry = Vec::new();
    let mut first = true;
    let mut layout = kind.unwrap_or_default();
    loop {
        let mut buf = pools.bytes();
        buf.append(&mut carry);
        let mut want = BLOCK.max(buf.len() + 1);
        let mut eof = fill(r, &mut buf, want)?;
        // Extend until the block holds at least one whole line.
        while !eof && memchr::memchr(b'\n', &buf).is_none() {
            if buf.len() >= MAX_LINE {
                return Err(io::Error::other(format!(
                    "{name}: a line is longer than {MAX_LINE} bytes"
                )));
            }
            want = buf.len() * 2;
            eof = fill(r, &mut buf, want)?;
        }
        if !eof {
            if let Some(cut) = memchr::memrchr(b'\n', &buf) {
                carry.extend_from_slice(&buf[cut + 1..]);
                buf.truncate(cut + 1);
            }
        }
        // An empty source still sends its first (empty) block, so it is counted as read.
        if buf.is_empty() && eof && !first {
            return Ok(());
        }
        let mut skip_bytes = 0;
        let mut skipped = 0;
        if let Some(says) = header(&buf).filter(|_| first) {
            if kind.is_some_and(|k| k != says) {
                return Err(io::Error::other(format!(
                    "{name}: the file name says {} but its header is a {} header",
                    layout.name(),
                    says.name()
                )));
            }
            layout = says;
            skip_bytes = memchr::memchr(b'\n', &buf).map_or(buf.len(), |i| i + 1);
            skipped = 1;
        }
        let block = Block {
            seq: *seq,
            file,
            source: source.clone(),
            first,
            skipped,
            layout,
            data: buf,
            skip_bytes,
        };
        *seq += 1;
        first = false;
        if tx.send(block).is_err() {
            return Ok(()); // the consumer stopped (an error it reports)
        }
        if eof {
            return Ok(());
        }
    }
}

fn parse_worker(rx: Receiver<Block>, tx: Sender<Parsed>, pools: &Pools) {
    for b in rx {
        let mut trades = pools.trades();
        let mut bad = Vec::new();
        let lines = parse_block(b.layout, &b.data[b.skip_bytes..], &mut trades, &mut bad);
        let bytes = b.data.len() as u64;
        let _ = pools.bytes.0.send(b.data);
        let parsed = Parsed {
            seq: b.seq,
            file: b.file,
            source: b.source,
            first: b.first,
            skipped: b.skipped,
            lines,
            bytes,
            trades,
            bad,
        };
        if tx.send(parsed).is_err() {
            return;
        }
    }
}

/// One symbol being written.
struct Current {
    symbol: String,
    unit: Option<TimeUnit>,
    agg: Option<Aggregator>,
    sink: Option<CsvSink<BufWriter<File>>>,
}

struct Consumer<'a> {
    opts: &'a ReplayOptions,
    files: &'a [(String, PathBuf)],
    summary: ReplaySummary,
    current: Option<Current>,
    /// Every output so far, under its temporary name until the whole replay succeeds; after
    /// `current` so its writers close before the temporaries of a failed run are removed.
    staged: StagedFiles,
    line_base: u64,
    bar: indicatif::ProgressBar,
}

impl Consumer<'_> {
    fn grids(&self, unit: TimeUnit) -> Vec<Grid> {
        let anchor = self.opts.anchor_3d_ms.unwrap_or(0);
        self.opts
            .intervals
            .iter()
            .map(|&iv| Grid::new(iv, unit, self.opts.tz_offset_ms, anchor))
            .collect()
    }

    /// A trade was refused for its time: an error naming it, or (skip_bad) a counted warning.
    fn refused(
        &mut self,
        path: &Path,
        what: Option<(Trade, Implausible)>,
    ) -> Result<(), ReplayError> {
        let Some((t, reason)) = what else { return Ok(()) };
        let hint = if reason == Implausible::Jump { ", or --max-jump" } else { "" };
        let file = path.display().to_string();
        let e = ReplayError::Implausible { file, id: t.id, time: t.time, reason, hint };
        if !self.opts.skip_bad {
            return Err(e);
        }
        if self.summary.warnings.len() < BAD_EXAMPLES {
            self.summary.warnings.push(e.to_string());
        }
        Ok(())
    }

    fn sink_failed(&self, symbol: &str, e: SinkError) -> ReplayError {
        match e {
            SinkError::Io(source) => ReplayError::Io {
                path: format!("{}/{symbol}-*.csv", self.opts.out_dir.display()),
                source,
            },
            SinkError::FlatRunTooLong(source) => {
                ReplayError::FlatRunTooLong { symbol: symbol.to_string(), source }
            }
        }
    }

    /// What the symbol's input covers by its file names (days or months, in `unit`), when
    /// every file of it is named so.
    fn covered(&self, symbol: &str, unit: TimeUnit) -> Option<(i64, i64)> {
        let per_ms = if unit == TimeUnit::Micros { 1000 } else { 1 };
        let mut covered: Option<(i64, i64)> = None;
        for (_, path) in self.files.iter().filter(|(s, _)| s == symbol) {
            let (start, end) = date_span_of_file_name(path)?;
            let (s, e) = covered.unwrap_or((start, end));
            covered = Some((s.min(start), e.max(end)));
        }
        covered.map(|(s, e)| (s * per_ms, e * per_ms))
    }

    fn finish_symbol(&mut self) -> Result<(), ReplayError> {
        let Some(mut cur) = self.current.take() else { return Ok(()) };
        if let (Some(agg), Some(mut sink)) = (cur.agg.as_mut(), cur.sink.take()) {
            let refused = agg.counts.implausible();
            agg.finish(&mut sink);
            if agg.counts.implausible() > refused {
                // The trade held to confirm a jump was not: it came at the symbol's end.
                let last = self.files.iter().rev().find(|(s, _)| *s == cur.symbol);
                let path = last.map_or_else(|| self.opts.out_dir.clone(), |(_, p)| p.clone());
                self.refused(&path, agg.refused)?;
            }
            self.summary.counts.add(&agg.counts);
            self.summary.klines_written += sink.written;
            if let (Some(span), Some(unit)) = (agg.span(), cur.unit) {
                let covered = self.covered(&cur.symbol, unit).unwrap_or((span.0, span.1 + 1));
                for ((grid, iv), edge) in
                    agg.grids().iter().zip(&self.opts.intervals).zip(&sink.edges)
                {
                    let Some((first, last)) = *edge else { continue };
                    for open_time in partial_edges(grid, first, last, covered) {
                        let symbol = cur.symbol.clone();
                        self.summary.partial.push(PartialPeriod {
                            symbol,
                            interval: *iv,
                            open_time,
                        });
                    }
                }
            }
            sink.finish().map_err(|e| self.sink_failed(&cur.symbol, e))?;
        }
        Ok(())
    }

    fn open_symbol(
        &mut self,
        symbol: &str,
        unit: TimeUnit,
    ) -> Result<(Aggregator, CsvSink<BufWriter<File>>), ReplayError> {
        let grids = self.grids(unit);
        let mut writers = Vec::with_capacity(grids.len());
        for iv in &self.opts.intervals {
            let path = self.opts.out_dir.join(format!("{symbol}-{iv}.csv"));
            let f = self.staged.create(&path).map_err(io_err(&path))?;
            writers.push(BufWriter::with_capacity(1 << 16, f));
            self.summary.outputs.push(path);
        }
        let limits = TimeLimits::from_ms(unit, None, self.opts.max_jump_ms);
        let agg =
            Aggregator::with_limits(grids.clone(), limits).with_quote_rule(self.opts.quote_rule);
        Ok((agg, CsvSink::new(&grids, writers)))
    }

    fn handle(&mut self, mut p: Parsed, pools: &Pools) -> Result<(), ReplayError> {
        let result = self.apply(&p);
        p.trades.clear();
        let _ = pools.trades.0.send(std::mem::take(&mut p.trades));
        result
    }

    fn apply(&mut self, p: &Parsed) -> Result<(), ReplayError> {
        let (symbol, path) = &self.files[p.file];
        if self.current.as_ref().is_none_or(|c| &c.symbol != symbol) {
            self.finish_symbol()?;
            self.current =
                Some(Current { symbol: symbol.clone(), unit: None, agg: None, sink: None });
        }
        if p.first {
            self.line_base = 0;
            self.summary.files += u64::from(p.first);
        }
        let base = self.line_base + p.skipped;
        for (idx, reason) in p.bad.iter() {
            let bad = BadRow::new(&*p.source, base + idx + 1, reason.clone());
            if !self.opts.skip_bad {
                return Err(ReplayError::BadRow(bad));
            }
            self.summary.bad_rows += 1;
            if self.summary.bad_examples.len() < BAD_EXAMPLES {
                self.summary.bad_examples.push(bad);
            }
        }
        self.line_base = base + p.lines;
        self.summary.rows += p.trades.len() as u64 + p.bad.len() as u64;
        self.summary.bytes += p.bytes;
        self.bar.inc(p.bytes);
        if p.trades.is_empty() {
            return Ok(());
        }
        // The block's unit by majority: one row in the other unit is refused, not followed.
        let micros = p.trades.iter().filter(|t| TimeUnit::detect(t.time) == TimeUnit::Micros);
        let found =
            if micros.count() * 2 > p.trades.len() { TimeUnit::Micros } else { TimeUnit::Millis };
        let cur = self.current.as_mut().expect("set above");
        match cur.unit {
            None => cur.unit = Some(found),
            Some(expected) if expected != found => {
                return Err(ReplayError::MixedUnits {
                    symbol: symbol.clone(),
                    file: path.display().to_string(),
                    found: found.name(),
                    expected: expected.name(),
                })
            }
            Some(_) => {}
        }
        if cur.agg.is_none() {
            let sym = cur.symbol.clone();
            let (agg, sink) = self.open_symbol(&sym, found)?;
            let cur = self.current.as_mut().expect("set above");
            cur.agg = Some(agg);
            cur.sink = Some(sink);
        }
        let cur = self.current.as_mut().expect("set above");
        let (agg, sink) = (cur.agg.as_mut().expect("opened"), cur.sink.as_mut().expect("opened"));
        let refused = agg.counts.implausible();
        for t in &p.trades {
            let _ = agg.push(t, sink);
        }
        if agg.counts.implausible() > refused {
            let what = agg.refused;
            self.refused(path, what)?;
        }
        let cur = self.current.as_mut().expect("set above");
        if let Some(e) = cur.sink.as_mut().expect("opened").error.take() {
            let symbol = cur.symbol.clone();
            return Err(self.sink_failed(&symbol, e));
        }
        Ok(())
    }
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
    let reader_error: Mutex<Option<ReplayError>> = Mutex::new(None);
    let pools = Pools::new();
    let mut consumer = Consumer {
        opts,
        files: &files,
        summary: ReplaySummary::default(),
        current: None,
        staged: StagedFiles::default(),
        line_base: 0,
        bar: progress_bar(total, opts.progress),
    };
    if let Some(warning) = epoch_3d_warning(&opts.intervals, opts.anchor_3d_ms) {
        consumer.summary.warnings.push(format!("{warning} (--anchor-3d YYYY-MM-DD)"));
    }
    let result: Result<(), ReplayError> = std::thread::scope(|s| {
        let (block_tx, block_rx) = bounded::<Block>(2 * threads);
        let (parsed_tx, parsed_rx) = bounded::<Parsed>(2 * threads);
        let files = &files;
        let reader_error = &reader_error;
        let pools = &pools;
        s.spawn(move || {
            let mut seq = 0;
            for (i, (_, path)) in files.iter().enumerate() {
                let kind = path.file_name().and_then(|n| n.to_str()).and_then(Layout::of_file_name);
                let res = for_each_csv(path, |name, r| {
                    read_source(name, kind, r, i, &mut seq, &block_tx, pools)
                });
                if let Err(e) = res {
                    *reader_error.lock().expect("not poisoned") = Some(io_err(path)(e));
                    return;
                }
            }
        });
        for _ in 0..threads {
            let (rx, tx) = (block_rx.clone(), parsed_tx.clone());
            s.spawn(move || parse_worker(rx, tx, pools));
        }
        drop((block_rx, parsed_tx));
        let mut pending = BTreeMap::new();
        let mut next = 0u64;
        for parsed in parsed_rx {
            pending.insert(parsed.seq, parsed);
            while let Some(p) = pending.remove(&next) {
                consumer.handle(p, pools)?;
                next += 1;
            }
        }
        Ok(())
    });
    result?;
    if let Some(e) = reader_error.into_inner().expect("not poisoned") {
        return Err(e);
    }
    consumer.finish_symbol()?;
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
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A fresh folder for one test (also used by `output`'s tests).
    pub(crate) fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kline_core-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn opts(out: &Path) -> ReplayOptions {
        ReplayOptions::new(vec!["1m".parse().unwrap()], out)
    }

    #[test]
    fn a_corrupt_zip_is_an_error_naming_the_file() {
        let dir = scratch("zip");
        let zip = dir.join("BTCUSDT-aggTrades-2020-01-02.zip");
        std::fs::write(&zip, b"PK\x03\x04 this is not a zip").unwrap();
        let err = replay(&[zip], &opts(&dir.join("out"))).unwrap_err();
        assert!(matches!(err, ReplayError::Io { ref path, .. } if path.ends_with(".zip")), "{err}");
    }

    #[test]
    fn lines_split_across_blocks_are_read_whole() {
        let dir = scratch("blocks");
        let path = dir.join("ETHUSDT-aggTrades-2020-01-02.csv");
        let mut f = File::create(&path).unwrap();
        let n: i64 = 40_000; // ≈ 3 MB: several 1 MiB blocks
        for i in 0..n {
            let t = 1_577_923_200_000 + i * 2_000;
            writeln!(f, "{i},{}.12345678,0.00100000,{i},{i},{t},False,True", 100 + i % 7).unwrap();
        }
        drop(f);
        let out = dir.join("out");
        let summary = replay(&[path], &ReplayOptions { threads: 3, ..opts(&out) }).unwrap();
        assert_eq!(
            (summary.rows, summary.counts.applied, summary.bad_rows),
            (n as u64, n as u64, 0)
        );
        let text = std::fs::read_to_string(out.join("ETHUSDT-1m.csv")).unwrap();
        let trades: u64 =
            text.lines().map(|l| l.split(',').nth(8).unwrap().parse::<u64>().unwrap()).sum();
        assert_eq!(trades, n as u64);
    }

    /// One symbol's day of trades every 2 s, with `edit` applied to the rows.
    fn day_file(dir: &Path, edit: impl Fn(i64, i64) -> i64) -> PathBuf {
        let path = dir.join("BTCUSDT-aggTrades-2020-01-02.csv");
        let mut f = File::create(&path).unwrap();
        for i in 0..20_000i64 {
            let t = edit(i, 1_577_923_200_000 + i * 2_000);
            writeln!(f, "{i},100.5,0.001,{i},{i},{t},False,True").unwrap();
        }
        path
    }

    fn lines_of(out: &Path) -> usize {
        std::fs::read_to_string(out.join("BTCUSDT-1m.csv")).unwrap().lines().count()
    }

    #[test]
    fn one_row_in_the_other_unit_or_a_flipped_digit_is_refused_not_followed() {
        type Edit = fn(i64, i64) -> i64;
        let dir = scratch("implausible");
        let clean = replay(&[day_file(&dir, |_, t| t)], &opts(&dir.join("clean"))).unwrap();
        let cases: [(&str, Edit); 3] = [
            ("micros", |i, t| if i == 7_000 { t * 1_000 } else { t }),
            ("first-micros", |i, t| if i == 0 { t * 1_000 } else { t }),
            ("flipped", |i, t| if i == 9_000 { t + 9_000_000_000_000 } else { t }),
        ];
        for (name, edit) in cases {
            let path = day_file(&dir, edit);
            let err = replay(std::slice::from_ref(&path), &opts(&dir.join(name))).unwrap_err();
            assert!(matches!(err, ReplayError::Implausible { .. }), "{name}: {err}");
            assert!(err.to_string().contains("--skip-bad"), "{err}");
            let out = dir.join(format!("{name}-skip"));
            let s = replay(&[path], &ReplayOptions { skip_bad: true, ..opts(&out) }).unwrap();
            assert_eq!(s.counts.implausible(), 1, "{name}");
            assert_eq!(s.counts.applied, clean.counts.applied - 1, "{name}: the rest applied");
            assert_eq!(s.counts.late, 0, "{name}: nothing poisoned");
            assert_eq!(lines_of(&out), lines_of(&dir.join("clean")), "{name}");
            assert_eq!(s.warnings.len(), 1, "{name}: {:?}", s.warnings);
        }
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_run_too_long_to_write_is_its_own_error_and_leaves_no_output() {
        let dir = scratch("too-long");
        let path = dir.join("BTCUSDT-aggTrades-2020-01-02.csv");
        let (t0, later) = (1_577_923_200_000i64, 1_577_923_200_000 + 400 * 86_400_000i64);
        let text = format!("1,100.5,1,1,1,{t0},False,True\n2,100.5,1,2,2,{later},False,True\n");
        std::fs::write(&path, text).unwrap();
        let out = dir.join("out");
        let one_s = ReplayOptions::new(vec!["1s".parse().unwrap()], &out);
        let err = replay(&[path], &ReplayOptions { max_jump_ms: None, ..one_s }).unwrap_err();
        assert!(
            matches!(err, ReplayError::FlatRunTooLong { ref symbol, ref source }
                if symbol == "BTCUSDT" && source.interval == "1s"),
            "{err}"
        );
        assert!(err.to_string().starts_with("BTCUSDT 1s: a quiet stretch"), "{err}");
        assert_eq!(names_in(&out), Vec::<String>::new());
    }

    #[test]
    fn a_failed_replay_keeps_the_previous_output_and_leaves_no_temporary() {
        let dir = scratch("keep");
        let out = dir.join("out");
        replay(&[day_file(&dir, |_, t| t)], &opts(&out)).unwrap();
        let good = std::fs::read(out.join("BTCUSDT-1m.csv")).unwrap();
        // The next day fails after the first has begun writing.
        std::fs::write(dir.join("BTCUSDT-aggTrades-2020-01-03.csv"), "garbage\n").unwrap();
        let err = replay(std::slice::from_ref(&dir), &opts(&out)).unwrap_err();
        assert!(matches!(err, ReplayError::BadRow(ref b) if b.line == 1), "{err}");
        assert_eq!(names_in(&out), ["BTCUSDT-1m.csv"]);
        assert_eq!(std::fs::read(out.join("BTCUSDT-1m.csv")).unwrap(), good);
    }

    #[test]
    fn a_raw_trade_span_past_2_32_is_a_bad_row_not_a_wrapped_count() {
        let dir = scratch("span");
        let path = day_file(&dir, |_, t| t);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&format!("20000,100.5,0.001,0,{},1577963200000,False,True\n", i64::MAX));
        std::fs::write(&path, text).unwrap();
        let err = replay(std::slice::from_ref(&path), &opts(&dir.join("out"))).unwrap_err();
        let ReplayError::BadRow(bad) = err else { panic!("{err}") };
        assert_eq!(bad.line, 20_001);
        assert!(bad.reason.contains("more than 2^32"), "{}", bad.reason);
        let out = dir.join("skip");
        let s = replay(&[path], &ReplayOptions { skip_bad: true, ..opts(&out) }).unwrap();
        assert_eq!((s.bad_rows, s.counts.applied, s.counts.invalid), (1, 20_000, 0));
        let text = std::fs::read_to_string(out.join("BTCUSDT-1m.csv")).unwrap();
        let trades: u64 =
            text.lines().map(|l| l.split(',').nth(8).unwrap().parse::<u64>().unwrap()).sum();
        assert_eq!(trades, 20_000);
    }

    #[test]
    fn a_halt_longer_than_the_jump_bound_is_followed() {
        let dir = scratch("halt");
        // From row 10 000 on, everything is 10 days later: a real halt, confirmed by the
        // trades after it.
        let path = day_file(&dir, |i, t| if i >= 10_000 { t + 10 * 86_400_000 } else { t });
        let s = replay(&[path], &opts(&dir.join("out"))).unwrap();
        assert_eq!((s.counts.applied, s.counts.implausible()), (20_000, 0));
    }

    #[test]
    fn a_symbol_that_is_a_path_is_refused() {
        let dir = scratch("symbol-path");
        let path = day_file(&dir, |_, t| t);
        for bad in ["../../X", "/tmp/X", "A/B", ""] {
            let o = ReplayOptions { symbol: Some(bad.into()), ..opts(&dir.join("out")) };
            let err = replay(std::slice::from_ref(&path), &o).unwrap_err();
            assert!(matches!(err, ReplayError::Symbol(_)), "{bad}: {err}");
        }
        assert!(!dir.join("X-1m.csv").exists() && !dir.join("out").exists());
        let o = ReplayOptions { symbol: Some("btcusdt".into()), ..opts(&dir.join("out")) };
        replay(&[path], &o).unwrap();
        assert!(dir.join("out").join("BTCUSDT-1m.csv").exists());
    }

    #[test]
    fn a_corrupt_aggtrade_id_is_refused_not_a_reason_to_drop_the_rest() {
        let dir = scratch("id");
        let path = dir.join("BTCUSDT-aggTrades-2020-01-02.csv");
        let mut f = File::create(&path).unwrap();
        for i in 0..5_000i64 {
            let a = if i == 2_000 { 9_000_000_000_000 + i } else { i };
            let t = 1_577_923_200_000 + i * 2_000;
            writeln!(f, "{a},100.5,0.001,{i},{i},{t},False,True").unwrap();
        }
        drop(f);
        let o = ReplayOptions { skip_bad: true, ..opts(&dir.join("out")) };
        let s = replay(&[path], &o).unwrap();
        assert_eq!((s.counts.applied, s.counts.implausible_id, s.counts.duplicates), (4_999, 1, 0));
    }
}
