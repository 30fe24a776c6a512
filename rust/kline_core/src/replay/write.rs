//! The writing side of a replay: blocks put back in order and aggregated one symbol at a
//! time, klines written as they close.

use super::*;
use std::io::Write;

/// One symbol being written.
pub(super) struct Current {
    pub(super) symbol: String,
    pub(super) unit: Option<TimeUnit>,
    pub(super) agg: Option<Aggregator>,
    pub(super) sink: Option<CsvSink<BufWriter<File>>>,
}

pub(super) struct Consumer<'a> {
    pub(super) opts: &'a ReplayOptions,
    pub(super) files: &'a [(String, PathBuf)],
    pub(super) summary: ReplaySummary,
    pub(super) current: Option<Current>,
    /// Every output so far, under its temporary name until the whole replay succeeds; after
    /// `current` so its writers close before the temporaries of a failed run are removed.
    pub(super) staged: StagedFiles,
    pub(super) line_base: u64,
    pub(super) bar: indicatif::ProgressBar,
}

impl<'a> Consumer<'a> {
    pub(super) fn new(
        opts: &'a ReplayOptions,
        files: &'a [(String, PathBuf)],
        bar: indicatif::ProgressBar,
    ) -> Self {
        Consumer {
            opts,
            files,
            summary: ReplaySummary::default(),
            current: None,
            staged: StagedFiles::default(),
            line_base: 0,
            bar,
        }
    }

    /// Adds what `other` replayed (later symbols) to this one's summary and outputs.
    pub(super) fn merge(&mut self, mut other: Consumer<'_>) {
        let (sum, theirs) = (&mut self.summary, std::mem::take(&mut other.summary));
        sum.files += theirs.files;
        sum.bytes += theirs.bytes;
        sum.rows += theirs.rows;
        sum.counts.add(&theirs.counts);
        sum.bad_rows += theirs.bad_rows;
        sum.klines_written += theirs.klines_written;
        sum.outputs.extend(theirs.outputs);
        sum.partial.extend(theirs.partial);
        let room = BAD_EXAMPLES.saturating_sub(sum.bad_examples.len());
        sum.bad_examples.extend(theirs.bad_examples.into_iter().take(room));
        let room = BAD_EXAMPLES.saturating_sub(sum.warnings.len());
        sum.warnings.extend(theirs.warnings.into_iter().take(room));
        self.staged.adopt(&mut other.staged);
    }

    pub(super) fn grids(&self, unit: TimeUnit) -> Vec<Grid> {
        let anchor = self.opts.anchor_3d_ms.unwrap_or(0);
        self.opts
            .intervals
            .iter()
            .map(|&iv| Grid::new(iv, unit, self.opts.tz_offset_ms, anchor))
            .collect()
    }

    /// A trade was refused for its time: an error naming it, or (skip_bad) a counted warning.
    pub(super) fn refused(
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

    pub(super) fn sink_failed(&self, symbol: &str, e: SinkError) -> ReplayError {
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
    pub(super) fn covered(&self, symbol: &str, unit: TimeUnit) -> Option<(i64, i64)> {
        let per_ms = if unit == TimeUnit::Micros { 1000 } else { 1 };
        let mut covered: Option<(i64, i64)> = None;
        for (_, path) in self.files.iter().filter(|(s, _)| s == symbol) {
            let (start, end) = date_span_of_file_name(path)?;
            let (s, e) = covered.unwrap_or((start, end));
            covered = Some((s.min(start), e.max(end)));
        }
        covered.map(|(s, e)| (s * per_ms, e * per_ms))
    }

    pub(super) fn finish_symbol(&mut self) -> Result<(), ReplayError> {
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

    pub(super) fn open_symbol(
        &mut self,
        symbol: &str,
        unit: TimeUnit,
    ) -> Result<(Aggregator, CsvSink<BufWriter<File>>), ReplayError> {
        let grids = self.grids(unit);
        let mut writers = Vec::with_capacity(grids.len());
        for iv in &self.opts.intervals {
            let path = self.opts.out_dir.join(format!("{symbol}-{iv}.csv"));
            let f = self.staged.create(&path).map_err(io_err(&path))?;
            let mut w = BufWriter::with_capacity(1 << 16, f);
            if self.opts.header {
                w.write_all(KLINE_CSV_HEADER.as_bytes()).map_err(io_err(&path))?;
            }
            writers.push(w);
            self.summary.outputs.push(path);
        }
        let limits = TimeLimits::from_ms(unit, None, self.opts.max_jump_ms);
        let agg =
            Aggregator::with_limits(grids.clone(), limits).with_quote_rule(self.opts.quote_rule);
        Ok((agg, CsvSink::new(&grids, writers)))
    }

    pub(super) fn handle(&mut self, mut p: Parsed, pools: &Pools) -> Result<(), ReplayError> {
        let result = self.apply(&p);
        p.trades.clear();
        let _ = pools.trades.0.send(std::mem::take(&mut p.trades));
        result
    }

    pub(super) fn apply(&mut self, p: &Parsed) -> Result<(), ReplayError> {
        let (symbol, path) = &self.files[p.file];
        if self.current.as_ref().is_none_or(|c| &c.symbol != symbol) {
            self.finish_symbol()?;
            self.current =
                Some(Current { symbol: symbol.clone(), unit: None, agg: None, sink: None });
        }
        if p.base_qty && !matches!(self.opts.quote_rule, QuoteRule::Contracts { .. }) {
            return Err(ReplayError::ContractSizeNeeded { file: p.source.to_string() });
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
