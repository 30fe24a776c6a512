//! Where klines leave: Binance's official kline CSV text.

use crate::aggregate::{expand_flat_run, FlatRunTooLong, KlineSink};
use crate::decimal::{quote_to_fixed8, write_fixed8};
use crate::interval::Grid;
use crate::kline::{FlatRun, Kline};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The header line of Binance's kline CSV files where it has one (its futures files), with
/// the newline: the column names [`write_kline_csv`] writes under.
pub const KLINE_CSV_HEADER: &str = "open_time,open,high,low,close,volume,close_time,\
    quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n";

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

/// Why a [`CsvSink`] stopped writing.
#[derive(Debug, Error)]
pub enum SinkError {
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A quiet stretch longer than the bound on flat klines per run.
    #[error(transparent)]
    FlatRunTooLong(#[from] FlatRunTooLong),
}

/// A [`KlineSink`] writing one CSV stream per interval, flat runs expanded.
pub struct CsvSink<W: Write> {
    grids: Vec<Grid>,
    writers: Vec<W>,
    buf: Vec<u8>,
    pub written: u64,
    /// Per interval, the open times of the first and last period written.
    pub edges: Vec<Option<(i64, i64)>>,
    /// The first error; later writes are skipped and the caller reports it.
    pub error: Option<SinkError>,
}

impl<W: Write> CsvSink<W> {
    pub fn new(grids: &[Grid], writers: Vec<W>) -> Self {
        assert_eq!(grids.len(), writers.len(), "one writer per interval");
        CsvSink {
            grids: grids.to_vec(),
            writers,
            buf: Vec::with_capacity(256),
            written: 0,
            edges: vec![None; grids.len()],
            error: None,
        }
    }

    fn emit(&mut self, interval: usize, k: &Kline) {
        if self.error.is_some() {
            return;
        }
        let first = self.edges[interval].map_or(k.open_time, |(first, _)| first);
        self.edges[interval] = Some((first, k.open_time));
        self.buf.clear();
        write_kline_csv(&mut self.buf, k);
        match self.writers[interval].write_all(&self.buf) {
            Ok(()) => self.written += 1,
            Err(e) => self.error = Some(e.into()),
        }
    }

    /// Flushes every writer and returns them, or the first error.
    pub fn finish(mut self) -> Result<Vec<W>, SinkError> {
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
        if self.error.is_some() {
            return;
        }
        let grid = self.grids[interval];
        if let Err(e) = expand_flat_run(&grid, run, |k| self.emit(interval, &k)) {
            self.error = Some(e.into());
        }
    }
}

/// Files written under a temporary name beside their final one (`.NAME.partial`) and renamed
/// over it only by [`StagedFiles::commit`]: a failed run leaves the previous files intact.
/// Temporaries not committed are removed on drop.
#[derive(Debug, Default)]
pub struct StagedFiles {
    /// (temporary, final) in creation order.
    files: Vec<(PathBuf, PathBuf)>,
}

impl StagedFiles {
    /// The temporary name of `path`: hidden, beside it, so the rename stays in one directory.
    pub fn temporary(path: &Path) -> PathBuf {
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        path.with_file_name(format!(".{name}.partial"))
    }

    /// Creates (or truncates) the temporary of `path`.
    pub fn create(&mut self, path: &Path) -> io::Result<File> {
        let tmp = Self::temporary(path);
        let file = File::create(&tmp)?;
        self.files.push((tmp, path.to_path_buf()));
        Ok(file)
    }

    /// Takes over `other`'s temporaries (committed or removed with these).
    pub fn adopt(&mut self, other: &mut StagedFiles) {
        self.files.append(&mut other.files);
    }

    /// Renames every temporary over its final name; the first failure names its final path.
    pub fn commit(&mut self) -> Result<(), (PathBuf, io::Error)> {
        while let Some((tmp, dest)) = self.files.pop() {
            if let Err(e) = std::fs::rename(&tmp, &dest) {
                let _ = std::fs::remove_file(&tmp);
                return Err((dest, e));
            }
        }
        Ok(())
    }
}

impl Drop for StagedFiles {
    fn drop(&mut self) {
        for (tmp, _) in self.files.drain(..) {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::tests::scratch;

    #[test]
    fn a_csv_sink_writes_flushes_and_hands_back_its_writers_counting_lines() {
        use crate::interval::{Interval, TimeUnit};
        let grid = Grid::utc(Interval::Fixed { ms: 60_000 }, TimeUnit::Millis);
        let mut sink = CsvSink::new(&[grid], vec![Vec::new()]);
        let mut k = Kline::flat(0, 59_999, 150_000_000);
        k.trades = 2;
        sink.kline(0, &k);
        sink.flat_run(0, &FlatRun { start: 60_000, end: 180_000, price: 150_000_000 });
        assert_eq!(sink.written, 3);
        let text = String::from_utf8(sink.finish().unwrap().remove(0)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "0,1.50000000,1.50000000,1.50000000,1.50000000,0.00000000,59999,0.00000000,2,0.00000000,0.00000000,0");
        assert!(lines[2].starts_with("120000,1.50000000,") && lines[2].contains(",179999,"));
    }

    #[test]
    fn staged_files_replace_on_commit_and_vanish_otherwise() {
        let dir = scratch("staged");
        let path = dir.join("BTCUSDT-1m.csv");
        std::fs::write(&path, "old\n").unwrap();
        {
            let mut staged = StagedFiles::default();
            staged.create(&path).unwrap().write_all(b"half").unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n", "untouched meanwhile");
        }
        let names = |d: &Path| {
            let mut v: Vec<_> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&dir), ["BTCUSDT-1m.csv"], "the temporary is removed");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        let mut staged = StagedFiles::default();
        staged.create(&path).unwrap().write_all(b"new\n").unwrap();
        staged.commit().unwrap();
        drop(staged);
        assert_eq!(names(&dir), ["BTCUSDT-1m.csv"]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
    }
}
