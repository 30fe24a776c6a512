//! `kline_rs._core`: conversions and errors only; the logic lives in `kline_core`.

mod arrow;
mod engine;
mod id_order;
mod rollup;
mod trades;

use kline_core::decimal::{format_fixed8, parse_decimal, QuoteRule, MAX_CONTRACT_SIZE};
use kline_core::interval::{parse_tz_offset, Grid, Interval, TimeUnit};
use kline_core::replay::{replay as core_replay, ReplayError as CoreReplayError, ReplayOptions};
use kline_core::Kline;
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::path::PathBuf;

create_exception!(_core, KlineError, PyException, "Base class of every kline_rs error.");
create_exception!(
    _core,
    DecimalError,
    KlineError,
    "A number that is not an exact 8-decimal value."
);
create_exception!(_core, IntervalError, KlineError, "An unknown interval or time-zone offset.");
create_exception!(_core, ParseError, KlineError, "A malformed input row or message.");
create_exception!(_core, TimeZoneError, IntervalError, "A time-zone offset Binance does not take.");
create_exception!(_core, SymbolError, KlineError, "A name that is not a symbol ([A-Z0-9_]{1,32}).");
create_exception!(_core, ReplayError, KlineError, "A replay that could not finish.");
create_exception!(_core, RollupError, KlineError, "Klines that cannot be rolled up as asked.");
create_exception!(_core, TimeError, KlineError, "A time that is neither ms nor an ISO 8601 time.");

pub(crate) fn interval(name: &str) -> PyResult<Interval> {
    name.parse()
        .map_err(|e: kline_core::interval::IntervalError| IntervalError::new_err(e.to_string()))
}

pub(crate) fn quote_rule(name: &str) -> PyResult<QuoteRule> {
    QuoteRule::parse(name).ok_or_else(|| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "quote_rule {name:?} is not \"per-trade\", \"exact-sum\" or \"contracts:<size>\" \
             (COIN-M, size 1..={MAX_CONTRACT_SIZE})"
        ))
    })
}

pub(crate) fn contract_rule(symbol: &str, size: u32) -> PyResult<QuoteRule> {
    QuoteRule::contracts(size).ok_or_else(|| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "{symbol}: contract size {size} is not within 1..={MAX_CONTRACT_SIZE}"
        ))
    })
}

pub(crate) fn tz(offset: Option<&str>) -> PyResult<i64> {
    offset.map_or(Ok(0), |s| parse_tz_offset(s).map_err(|e| TimeZoneError::new_err(e.to_string())))
}

/// Binance kline rows (REST arrays, or the fields of kline CSV lines) → kline columns, with
/// the core's parser: volumes of any size (i128), quote volumes at 1e-16, trade ids -1.
#[pyfunction]
fn parse_kline_rows<'py>(
    py: Python<'py>,
    rows: Vec<Vec<Bound<'py, PyAny>>>,
) -> PyResult<Bound<'py, PyDict>> {
    let mut klines = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let fields = row
            .iter()
            .map(|v| match v.extract::<i64>() {
                Ok(n) => Ok(n.to_string()),
                Err(_) => v.extract::<String>(),
            })
            .collect::<PyResult<Vec<String>>>()
            .map_err(|_| {
                ParseError::new_err(format!("kline row {i}: a field is not text or int"))
            })?;
        let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
        let k = kline_core::parse::kline_row::parse_kline_fields(&refs)
            .map_err(|e| ParseError::new_err(format!("kline row {i}: {e}")))?;
        klines.push(k);
    }
    kline_columns(py, &klines)
}

/// The core's warning for 3d klines on the epoch grid (no anchor given), or None.
#[pyfunction]
#[pyo3(signature = (intervals, anchor_3d_ms=None))]
fn epoch_3d_warning(intervals: Vec<String>, anchor_3d_ms: Option<i64>) -> PyResult<Option<String>> {
    let parsed = intervals.iter().map(|s| interval(s)).collect::<PyResult<Vec<_>>>()?;
    Ok(kline_core::interval::epoch_3d_warning(&parsed, anchor_3d_ms).map(str::to_string))
}

/// Text → mantissa at 1e-8.
#[pyfunction]
fn parse_fixed8(text: &str) -> PyResult<i64> {
    parse_decimal(text).map_err(|e| DecimalError::new_err(e.to_string()))
}

/// Mantissa at 1e-8 → Binance's 8-decimal text.
#[pyfunction]
#[pyo3(name = "format_fixed8")]
fn format_fixed8_py(value: i128) -> String {
    format_fixed8(value)
}

fn scale_of(decimals: usize) -> PyResult<usize> {
    if decimals == 0 || decimals > kline_core::decimal::MAX_SCALED_DECIMALS {
        let max = kline_core::decimal::MAX_SCALED_DECIMALS;
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "decimals {decimals} is not within 1..={max}"
        )));
    }
    Ok(decimals)
}

/// Mantissa at `10^-decimals` (8: prices, volumes; 16: quote sums) → its exact text.
#[pyfunction]
#[pyo3(signature = (value, decimals=8))]
fn format_fixed(value: i128, decimals: usize) -> PyResult<String> {
    Ok(kline_core::decimal::format_scaled(value, scale_of(decimals)?))
}

/// A column of mantissas at `10^-decimals` → their exact texts, in order (what
/// `format_fixed` gives each, in one call).
#[pyfunction]
#[pyo3(signature = (values, decimals=8))]
fn format_fixed_many(values: Vec<i128>, decimals: usize) -> PyResult<Vec<String>> {
    let decimals = scale_of(decimals)?;
    Ok(values.into_iter().map(|v| kline_core::decimal::format_scaled(v, decimals)).collect())
}

/// Decimal text → mantissa at `10^-decimals` (any size up to i128).
#[pyfunction]
#[pyo3(signature = (text, decimals=8))]
fn parse_fixed(text: &str, decimals: usize) -> PyResult<i128> {
    kline_core::decimal::parse_scaled(text.as_bytes(), scale_of(decimals)?)
        .map_err(|e| DecimalError::new_err(e.to_string()))
}

/// Decimal texts → their mantissas at `10^-decimals`, in order (what `parse_fixed` gives
/// each, in one call); the first text that is no such decimal is a `DecimalError` naming it.
#[pyfunction]
#[pyo3(signature = (texts, decimals=8))]
fn parse_fixed_many(texts: Vec<String>, decimals: usize) -> PyResult<Vec<i128>> {
    let decimals = scale_of(decimals)?;
    texts
        .iter()
        .map(|t| {
            kline_core::decimal::parse_scaled(t.as_bytes(), decimals)
                .map_err(|e| DecimalError::new_err(format!("{t:.40?}: {e}")))
        })
        .collect()
}

/// A quote sum at 1e-16 as Binance prints it (8 decimals, the rest truncated).
#[pyfunction]
fn format_quote(value: i128) -> String {
    kline_core::decimal::format_quote(value)
}

/// ms since the epoch, or an ISO 8601 day / day and time (UTC unless it has an offset) → ms.
#[pyfunction]
fn parse_time(text: &str) -> PyResult<i64> {
    kline_core::timestamp::parse_time_ms(text).map_err(|e| TimeError::new_err(e.to_string()))
}

/// A time (ms, or µs with `time_unit="us"`; default: detected) → ISO 8601 UTC text.
#[pyfunction]
#[pyo3(signature = (t, time_unit=None))]
fn format_time(t: i64, time_unit: Option<&str>) -> PyResult<String> {
    let unit = time_unit.map_or(Ok(TimeUnit::detect(t)), time_unit_named)?;
    Ok(kline_core::timestamp::format_time(t, unit))
}

/// Binance's kline CSV header line (without the newline).
#[pyfunction]
fn kline_csv_header() -> &'static str {
    kline_core::output::KLINE_CSV_HEADER.trim_end()
}

/// `(shortest, longest)` length of one period of `interval` in ms (a month: 28 and 31 days),
/// or IntervalError.
#[pyfunction]
fn interval_ms(name: &str) -> PyResult<(i64, i64)> {
    let iv = interval(name)?;
    Ok((iv.shortest_ms(), iv.nominal_ms()))
}

/// One kline as a line of Binance's kline CSV (without the newline): the core's text rules,
/// quote volumes (1e-16) brought to 8 decimals as the core prints them.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn kline_csv_line(
    open_time: i64,
    close_time: i64,
    open: i64,
    high: i64,
    low: i64,
    close: i64,
    volume: i128,
    quote_volume: i128,
    trades: u64,
    taker_buy_volume: i128,
    taker_buy_quote_volume: i128,
) -> String {
    kline_core::output::kline_csv_line(&Kline {
        open_time,
        close_time,
        open,
        high,
        low,
        close,
        volume,
        quote_volume,
        trades,
        taker_buy_volume,
        taker_buy_quote_volume,
        first_trade_id: -1,
        last_trade_id: -1,
        inexact_trades: 0,
        quote_volume_exact: quote_volume,
    })
}

/// Why a relayed trade's time cannot be true (`kline_core::plausible::check_relayed`'s
/// reason), or None: outside its unit's range, or too far from its event's time.
#[pyfunction]
#[pyo3(signature = (time, event_time, time_unit="ms"))]
fn relayed_time_refusal(time: i64, event_time: i64, time_unit: &str) -> PyResult<Option<String>> {
    let unit = time_unit_named(time_unit)?;
    Ok(kline_core::plausible::check_relayed(time, event_time, unit)
        .err()
        .map(|why| why.to_string()))
}

/// Canonical name of an interval (`"60m"` → `"1h"`), or IntervalError.
#[pyfunction]
fn interval_name(name: &str) -> PyResult<String> {
    Ok(interval(name)?.to_string())
}

#[pyfunction]
#[pyo3(signature = (inputs, out_dir, intervals, *, symbol=None, tz_offset=None, anchor_3d_ms=None, skip_bad=false, threads=0, progress=false, max_jump_ms=Some(kline_core::replay::DEFAULT_MAX_JUMP_MS), quote_rule="per-trade", header=false))]
#[allow(clippy::too_many_arguments)]
fn replay<'py>(
    py: Python<'py>,
    inputs: Vec<PathBuf>,
    out_dir: PathBuf,
    intervals: Vec<String>,
    symbol: Option<String>,
    tz_offset: Option<&str>,
    anchor_3d_ms: Option<i64>,
    skip_bad: bool,
    threads: usize,
    progress: bool,
    max_jump_ms: Option<i64>,
    quote_rule: &str,
    header: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let mut opts = ReplayOptions::new(
        intervals.iter().map(|s| interval(s)).collect::<PyResult<_>>()?,
        out_dir,
    );
    opts.symbol = symbol;
    opts.tz_offset_ms = tz(tz_offset)?;
    opts.anchor_3d_ms = anchor_3d_ms;
    opts.skip_bad = skip_bad;
    opts.threads = threads;
    opts.progress = progress;
    opts.max_jump_ms = max_jump_ms;
    opts.quote_rule = crate::quote_rule(quote_rule)?;
    opts.header = header;
    let summary = py.detach(|| core_replay(&inputs, &opts)).map_err(|e| match e {
        CoreReplayError::BadRow(_) | CoreReplayError::Implausible { .. } => {
            ParseError::new_err(e.to_string())
        }
        _ => ReplayError::new_err(e.to_string()),
    })?;
    let d = PyDict::new(py);
    d.set_item("files", summary.files)?;
    d.set_item("bytes", summary.bytes)?;
    d.set_item("rows", summary.rows)?;
    d.set_item("trades", summary.counts.applied)?;
    d.set_item("duplicates", summary.counts.duplicates)?;
    d.set_item("placeholders", summary.counts.placeholders)?;
    d.set_item("invalid", summary.counts.invalid)?;
    d.set_item("late", summary.counts.late)?;
    d.set_item("implausible_unit", summary.counts.implausible_unit)?;
    d.set_item("implausible_jump", summary.counts.implausible_jump)?;
    d.set_item("implausible_id", summary.counts.implausible_id)?;
    d.set_item("inexact", summary.counts.inexact)?;
    d.set_item("bad_rows", summary.bad_rows)?;
    let bad: Vec<String> = summary.bad_examples.iter().map(ToString::to_string).collect();
    d.set_item("bad_examples", bad)?;
    d.set_item("klines_written", summary.klines_written)?;
    d.set_item("seconds", summary.seconds)?;
    d.set_item("outputs", summary.outputs)?;
    d.set_item("warnings", summary.warnings)?;
    let partial: Vec<(String, String, i64)> = summary
        .partial
        .iter()
        .map(|p| (p.symbol.clone(), p.interval.to_string(), p.open_time))
        .collect();
    d.set_item("partial", partial)?;
    Ok(d)
}

/// Columns of klines: int64 arrays, plus Python ints for the 128-bit sums.
pub(crate) fn kline_columns<'py>(
    py: Python<'py>,
    klines: &[Kline],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let col = |f: fn(&Kline) -> i64| PyArray1::from_vec(py, klines.iter().map(f).collect());
    d.set_item("open_time", col(|k| k.open_time))?;
    d.set_item("close_time", col(|k| k.close_time))?;
    d.set_item("open", col(|k| k.open))?;
    d.set_item("high", col(|k| k.high))?;
    d.set_item("low", col(|k| k.low))?;
    d.set_item("close", col(|k| k.close))?;
    d.set_item("trades", col(|k| k.trades as i64))?;
    d.set_item("first_trade_id", col(|k| k.first_trade_id))?;
    d.set_item("last_trade_id", col(|k| k.last_trade_id))?;
    d.set_item("inexact_trades", col(|k| k.inexact_trades as i64))?;
    let wide = |f: fn(&Kline) -> i128| PyList::new(py, klines.iter().map(f));
    d.set_item("volume", wide(|k| k.volume)?)?;
    d.set_item("quote_volume", wide(|k| k.quote_volume)?)?;
    d.set_item("taker_buy_volume", wide(|k| k.taker_buy_volume)?)?;
    d.set_item("taker_buy_quote_volume", wide(|k| k.taker_buy_quote_volume)?)?;
    d.set_item("quote_volume_exact", wide(|k| k.quote_volume_exact)?)?;
    Ok(d)
}

/// `"ms"` or `"us"`.
pub(crate) fn time_unit_named(name: &str) -> PyResult<TimeUnit> {
    match name {
        "ms" => Ok(TimeUnit::Millis),
        "us" => Ok(TimeUnit::Micros),
        other => {
            Err(IntervalError::new_err(format!("time_unit {other:?} is not \"ms\" or \"us\"")))
        }
    }
}

/// Trades (a `TRADE_DTYPE` array, prices and quantities at 1e-8) → klines per interval.
#[pyfunction]
#[pyo3(signature = (trades, intervals, *, tz_offset=None, anchor_3d_ms=None, time_unit=None, quote_rule="per-trade", covers=None))]
#[allow(clippy::too_many_arguments)]
fn aggregate<'py>(
    py: Python<'py>,
    trades: PyReadonlyArray1<'py, trades::TradeRow>,
    intervals: Vec<String>,
    tz_offset: Option<&str>,
    anchor_3d_ms: Option<i64>,
    time_unit: Option<&str>,
    quote_rule: &str,
    covers: Option<(i64, i64)>,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = kline_core::aggregate::AggregateOptions {
        intervals: intervals.iter().map(|s| interval(s)).collect::<PyResult<_>>()?,
        unit: time_unit.map(time_unit_named).transpose()?,
        tz_offset_ms: tz(tz_offset)?,
        anchor_3d_ms,
        quote_rule: crate::quote_rule(quote_rule)?,
        covers,
    };
    let trades = trades::trades_of(&trades)?;
    let done = py
        .detach(|| kline_core::aggregate::aggregate_trades(&trades, &opts))
        .map_err(|e| KlineError::new_err(e.to_string()))?;
    let (result, partial) = (PyDict::new(py), PyDict::new(py));
    for ((name, ks), opens) in intervals.iter().zip(&done.klines).zip(done.partial) {
        result.set_item(name, kline_columns(py, ks)?)?;
        partial.set_item(name, opens)?;
    }
    let counts = done.counts;
    let c = PyDict::new(py);
    c.set_item("trades", counts.applied)?;
    c.set_item("duplicates", counts.duplicates)?;
    c.set_item("placeholders", counts.placeholders)?;
    c.set_item("invalid", counts.invalid)?;
    c.set_item("late", counts.late)?;
    c.set_item("implausible_unit", counts.implausible_unit)?;
    c.set_item("implausible_jump", counts.implausible_jump)?;
    c.set_item("implausible_id", counts.implausible_id)?;
    c.set_item("inexact", counts.inexact)?;
    let out = PyDict::new(py);
    out.set_item("klines", result)?;
    out.set_item("counts", c)?;
    out.set_item("partial", partial)?;
    Ok(out)
}

/// Binance's `timeZone` forms → `+HH:MM`; anything else a `TimeZoneError`.
#[pyfunction]
fn tz_offset_name(text: &str) -> PyResult<String> {
    Ok(kline_core::interval::format_tz_offset(tz(Some(text))?))
}

/// `"btcusdt"` → `"BTCUSDT"`; a name that is not `[A-Z0-9_]{1,32}` is a `SymbolError`.
#[pyfunction]
fn symbol_name(text: &str) -> PyResult<String> {
    kline_core::symbol::symbol_name(text)
        .map(std::borrow::Cow::into_owned)
        .map_err(|e| SymbolError::new_err(e.to_string()))
}

/// The shard (`0..shards`) of a symbol where work is split by symbol
/// (`kline_core::symbol::shard_of`); `shards` must be at least 1.
#[pyfunction]
fn shard_of(symbol: &str, shards: u32) -> PyResult<u32> {
    let n = std::num::NonZeroU32::new(shards)
        .ok_or_else(|| pyo3::exceptions::PyValueError::new_err("shards must be at least 1"))?;
    Ok(kline_core::symbol::shard_of(symbol, n))
}

/// `(open_times, close_times)` of the flat periods of a stored run `open_time..=close_time`
/// that open in `[lo, hi)` (the latest `last` of them if given), in ms; past the expansion
/// bound a `KlineError`.
#[pyfunction]
#[pyo3(signature = (interval, open_time, close_time, lo, hi, *, tz_offset=None, last=None))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn flat_periods<'py>(
    py: Python<'py>,
    interval: &str,
    open_time: i64,
    close_time: i64,
    lo: i64,
    hi: i64,
    tz_offset: Option<&str>,
    last: Option<i64>,
) -> PyResult<(Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i64>>)> {
    let grid = Grid::new(self::interval(interval)?, TimeUnit::Millis, tz(tz_offset)?, open_time);
    let run = kline_core::FlatRun { start: open_time, end: close_time.saturating_add(1), price: 0 };
    let got = kline_core::aggregate::flat_periods(&grid, &run, lo, hi, last)
        .map_err(|e| KlineError::new_err(e.to_string()))?;
    let (opens, closes): (Vec<i64>, Vec<i64>) = got.into_iter().unzip();
    Ok((PyArray1::from_vec(py, opens), PyArray1::from_vec(py, closes)))
}

/// Official kline CSV lines (one interval) → lines of a coarser interval, exactly.
#[pyfunction]
#[pyo3(signature = (lines, to_interval, *, tz_offset=None, anchor_3d_ms=None))]
fn rollup_csv(
    lines: Vec<String>,
    to_interval: &str,
    tz_offset: Option<&str>,
    anchor_3d_ms: Option<i64>,
) -> PyResult<Vec<String>> {
    let to = interval(to_interval)?;
    kline_core::rollup::rollup_csv(&lines, to, tz(tz_offset)?, anchor_3d_ms).map_err(|e| match e {
        kline_core::rollup::RollupError::BadLine { .. } => ParseError::new_err(e.to_string()),
        _ => RollupError::new_err(e.to_string()),
    })
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("KlineError", py.get_type::<KlineError>())?;
    m.add("DecimalError", py.get_type::<DecimalError>())?;
    m.add("IntervalError", py.get_type::<IntervalError>())?;
    m.add("ParseError", py.get_type::<ParseError>())?;
    m.add("TimeZoneError", py.get_type::<TimeZoneError>())?;
    m.add("SymbolError", py.get_type::<SymbolError>())?;
    m.add("ReplayError", py.get_type::<ReplayError>())?;
    m.add("RollupError", py.get_type::<RollupError>())?;
    m.add("TimeError", py.get_type::<TimeError>())?;
    m.add_function(wrap_pyfunction!(parse_fixed8, m)?)?;
    m.add_function(wrap_pyfunction!(parse_kline_rows, m)?)?;
    m.add_function(wrap_pyfunction!(epoch_3d_warning, m)?)?;
    m.add_function(wrap_pyfunction!(format_fixed8_py, m)?)?;
    m.add_function(wrap_pyfunction!(format_fixed, m)?)?;
    m.add_function(wrap_pyfunction!(format_fixed_many, m)?)?;
    m.add_function(wrap_pyfunction!(parse_fixed, m)?)?;
    m.add_function(wrap_pyfunction!(parse_fixed_many, m)?)?;
    m.add_function(wrap_pyfunction!(format_quote, m)?)?;
    m.add_function(wrap_pyfunction!(parse_time, m)?)?;
    m.add_function(wrap_pyfunction!(format_time, m)?)?;
    m.add_function(wrap_pyfunction!(kline_csv_header, m)?)?;
    m.add_function(wrap_pyfunction!(interval_ms, m)?)?;
    m.add_function(wrap_pyfunction!(interval_name, m)?)?;
    m.add_function(wrap_pyfunction!(relayed_time_refusal, m)?)?;
    m.add("MAX_EVENT_SKEW_MS", kline_core::plausible::MAX_EVENT_SKEW_MS)?;
    m.add_function(wrap_pyfunction!(replay, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate, m)?)?;
    m.add_function(wrap_pyfunction!(rollup_csv, m)?)?;
    m.add_function(wrap_pyfunction!(flat_periods, m)?)?;
    m.add_function(wrap_pyfunction!(tz_offset_name, m)?)?;
    m.add_function(wrap_pyfunction!(symbol_name, m)?)?;
    m.add_function(wrap_pyfunction!(shard_of, m)?)?;
    m.add_function(wrap_pyfunction!(kline_csv_line, m)?)?;
    m.add_function(wrap_pyfunction!(trades::trade_dtype, m)?)?;
    m.add_function(wrap_pyfunction!(trades::parse_agg_trades, m)?)?;
    m.add_function(wrap_pyfunction!(trades::parse_trades, m)?)?;
    engine::register(m)?;
    id_order::register(m)?;
    arrow::register(m)?;
    rollup::register(m)?;
    Ok(())
}
