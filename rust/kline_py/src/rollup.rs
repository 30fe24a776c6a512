//! Klines as columns → a coarser interval, and which grids roll up into which: conversions
//! only, the rules are `kline_core::rollup` and `Grid::refines`.

use crate::{interval, kline_columns, tz, RollupError};
use kline_core::interval::{Grid, TimeUnit};
use kline_core::Kline;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

fn column<'py, T: FromPyObjectOwned<'py>>(
    columns: &Bound<'py, PyDict>,
    name: &str,
) -> PyResult<Option<Vec<T>>> {
    columns
        .get_item(name)?
        .map(|c| c.extract::<Vec<T>>().map_err(|_| wrong_column(name)))
        .transpose()
}

fn wrong_column(name: &str) -> PyErr {
    PyValueError::new_err(format!("kline column {name:?} is not a sequence of whole numbers"))
}

fn required<'py, T: FromPyObjectOwned<'py>>(
    columns: &Bound<'py, PyDict>,
    name: &str,
) -> PyResult<Vec<T>> {
    column(columns, name)?
        .ok_or_else(|| PyValueError::new_err(format!("kline column {name:?} is missing")))
}

/// Columns of klines (the names `kline_columns` gives; `inexact_trades` and
/// `quote_volume_exact` may be left out: 0 and `quote_volume`) → `Kline`s.
fn klines_of(columns: &Bound<'_, PyDict>) -> PyResult<Vec<Kline>> {
    let i64s = |name| required::<i64>(columns, name);
    let i128s = |name| required::<i128>(columns, name);
    let (open_time, close_time) = (i64s("open_time")?, i64s("close_time")?);
    let (open, high, low, close) = (i64s("open")?, i64s("high")?, i64s("low")?, i64s("close")?);
    let (volume, quote_volume) = (i128s("volume")?, i128s("quote_volume")?);
    let trades = required::<u64>(columns, "trades")?;
    let (taker_volume, taker_quote) =
        (i128s("taker_buy_volume")?, i128s("taker_buy_quote_volume")?);
    let (first_id, last_id) = (i64s("first_trade_id")?, i64s("last_trade_id")?);
    let n = open_time.len();
    let inexact = column::<u64>(columns, "inexact_trades")?.unwrap_or_else(|| vec![0; n]);
    let exact = column::<i128>(columns, "quote_volume_exact")?.unwrap_or(quote_volume.clone());
    let lengths = [
        close_time.len(),
        open.len(),
        high.len(),
        low.len(),
        close.len(),
        volume.len(),
        quote_volume.len(),
        trades.len(),
        taker_volume.len(),
        taker_quote.len(),
        first_id.len(),
        last_id.len(),
        inexact.len(),
        exact.len(),
    ];
    if lengths.iter().any(|&len| len != n) {
        return Err(PyValueError::new_err(format!(
            "kline columns differ in length: open_time has {n}, others {lengths:?}"
        )));
    }
    Ok((0..n)
        .map(|i| Kline {
            open_time: open_time[i],
            close_time: close_time[i],
            open: open[i],
            high: high[i],
            low: low[i],
            close: close[i],
            volume: volume[i],
            quote_volume: quote_volume[i],
            trades: trades[i],
            taker_buy_volume: taker_volume[i],
            taker_buy_quote_volume: taker_quote[i],
            first_trade_id: first_id[i],
            last_trade_id: last_id[i],
            inexact_trades: inexact[i],
            quote_volume_exact: exact[i],
        })
        .collect())
}

/// Klines of one interval (columns, oldest first; ms or µs) → the klines of `to_interval`,
/// exactly, as columns (`kline_columns`' form): the core's roll-up, which invents no row.
#[pyfunction]
#[pyo3(signature = (columns, to_interval, *, tz_offset=None, anchor_3d_ms=None))]
fn rollup_klines<'py>(
    py: Python<'py>,
    columns: &Bound<'py, PyDict>,
    to_interval: &str,
    tz_offset: Option<&str>,
    anchor_3d_ms: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let finer = klines_of(columns)?;
    let unit = finer.first().map_or(TimeUnit::Millis, |k| TimeUnit::detect(k.open_time));
    let grid = Grid::new(interval(to_interval)?, unit, tz(tz_offset)?, anchor_3d_ms.unwrap_or(0));
    let coarse = py
        .detach(|| kline_core::rollup::rollup(&finer, &grid))
        .map_err(|e| RollupError::new_err(e.to_string()))?;
    kline_columns(py, &coarse)
}

/// Whether every `coarse` period (at `tz_offset`, 3d stepped from `anchor_3d_ms`) is a whole
/// number of `finer` periods (at `finer_tz_offset`), so `coarse` rolls up exactly from `finer`.
#[pyfunction]
#[pyo3(signature = (finer, coarse, *, finer_tz_offset=None, tz_offset=None, anchor_3d_ms=None))]
fn refines(
    finer: &str,
    coarse: &str,
    finer_tz_offset: Option<&str>,
    tz_offset: Option<&str>,
    anchor_3d_ms: Option<i64>,
) -> PyResult<bool> {
    let f = Grid::new(interval(finer)?, TimeUnit::Millis, tz(finer_tz_offset)?, 0);
    let c =
        Grid::new(interval(coarse)?, TimeUnit::Millis, tz(tz_offset)?, anchor_3d_ms.unwrap_or(0));
    Ok(f.refines(&c))
}

/// Whether the periods of `interval` at `tz_offset` are its periods at `other_tz_offset` (an
/// offset moves only 1d and longer ones).
#[pyfunction]
#[pyo3(signature = (interval, tz_offset=None, other_tz_offset=None))]
fn same_periods(
    interval: &str,
    tz_offset: Option<&str>,
    other_tz_offset: Option<&str>,
) -> PyResult<bool> {
    let iv = crate::interval(interval)?;
    let grid = |offset| Ok::<_, PyErr>(Grid::new(iv, TimeUnit::Millis, tz(offset)?, 0));
    Ok(grid(tz_offset)? == grid(other_tz_offset)?)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rollup_klines, m)?)?;
    m.add_function(wrap_pyfunction!(refines, m)?)?;
    m.add_function(wrap_pyfunction!(same_periods, m)?)?;
    Ok(())
}
