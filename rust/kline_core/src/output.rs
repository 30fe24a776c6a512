//! Where klines leave: Binance's official kline CSV text.

use crate::aggregate::{expand_flat_run, KlineSink};
use crate::decimal::{quote_to_fixed8, write_fixed8};
use crate::interval::Grid;
use crate::kline::{FlatRun, Kline};
use std::io::{self, Write};

/// Appends one line of Binance's kline CSV (12 columns, 8-decimal text, no header):
/// `open_time,open,high,low,close,volume,close_time,quote_volume,trades,taker_buy_base,taker_buy_quote,0`.
pub fn write_kline_csv(out: &mut Vec<u8>, k: &Kline) {
    let _ = write!(out, "{},", k.open_time);
    for p in [k.open, k.high, k.low, k.close] {
        write_fixed8(out, i128::from(p));
        out.push(b',');
    }
    write_fixed8(out, k.volume);
    let _ = write!(out, ",{},", k.close_time);
    write_fixed8(out, quote_to_fixed8(k.quote_volume));
    let _ = write!(out, ",{},", k.trades);
    write_fixed8(out, k.taker_buy_volume);
    out.push(b',');
    write_fixed8(out, quote_to_fixed8(k.taker_buy_quote_volume));
    out.extend_from_slice(b",0\n");
}

/// One kline as a CSV line without the newline.
pub fn kline_csv_line(k: &Kline) -> String {
    let mut out = Vec::with_capacity(160);
    write_kline_csv(&mut out, k);
    out.pop();
    String::from_utf8(out).expect("ascii")
}

/// A [`KlineSink`] writing one CSV stream per interval, flat runs expanded.
pub struct CsvSink<W: Write> {
    grids: Vec<Grid>,
    writers: Vec<W>,
    buf: Vec<u8>,
    pub written: u64,
    /// The first write error; later writes are skipped and the caller reports it.
    pub error: Option<io::Error>,
}

impl<W: Write> CsvSink<W> {
    pub fn new(grids: &[Grid], writers: Vec<W>) -> Self {
        assert_eq!(grids.len(), writers.len(), "one writer per interval");
        CsvSink {
            grids: grids.to_vec(),
            writers,
            buf: Vec::with_capacity(256),
            written: 0,
            error: None,
        }
    }

    fn emit(&mut self, interval: usize, k: &Kline) {
        if self.error.is_some() {
            return;
        }
        self.buf.clear();
        write_kline_csv(&mut self.buf, k);
        match self.writers[interval].write_all(&self.buf) {
            Ok(()) => self.written += 1,
            Err(e) => self.error = Some(e),
        }
    }

    /// Flushes every writer and returns them, or the first error.
    pub fn finish(mut self) -> io::Result<Vec<W>> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        for w in &mut self.writers {
            w.flush()?;
        }
        Ok(self.writers)
    }
}

impl<W: Write> KlineSink for CsvSink<W> {
    fn kline(&mut self, interval: usize, kline: &Kline) {
        self.emit(interval, kline);
    }

    fn flat_run(&mut self, interval: usize, run: &FlatRun) {
        let grid = self.grids[interval];
        if let Err(e) = expand_flat_run(&grid, run, |k| self.emit(interval, &k)) {
            self.error.get_or_insert(io::Error::new(io::ErrorKind::InvalidData, e));
        }
    }
}
