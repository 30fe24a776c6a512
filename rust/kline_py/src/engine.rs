//! `kline_rs._core.Engine`: the streaming engine, with the GIL released on every heavy call.

use crate::trades::{trades_of, TradeRow};
use crate::{interval, kline_columns, time_unit_named, tz, KlineError};
use kline_core::engine::clock::ManualClock as CoreManualClock;
use kline_core::engine::columns::{slot_row, slot_value, RecordColumns, SlotState};
use kline_core::engine::output::Record;
use kline_core::engine::table::SlotValue;
use kline_core::engine::{
    Engine as CoreEngine, EngineConfig, EngineError as CoreError, Holes, LatePolicy, SymbolSpec,
};
use kline_core::Kline;
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::conversion::FromPyObjectOwned;
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

create_exception!(_core, EngineError, KlineError, "The streaming engine refused a call.");
create_exception!(_core, BackpressureError, EngineError, "A partition's ring stayed full.");
create_exception!(_core, UnknownSymbolError, EngineError, "A symbol the engine does not follow.");

fn engine_err(e: CoreError) -> PyErr {
    match e {
        CoreError::Backpressure(_) => BackpressureError::new_err(e.to_string()),
        CoreError::UnknownSymbol(_) => UnknownSymbolError::new_err(e.to_string()),
        _ => EngineError::new_err(e.to_string()),
    }
}

/// A clock that moves only when set: deterministic tests of time-based closing.
#[pyclass(module = "kline_rs._core", frozen)]
pub struct ManualClock {
    inner: Arc<CoreManualClock>,
}

#[pymethods]
impl ManualClock {
    #[new]
    fn new(start: i64) -> Self {
        ManualClock { inner: Arc::new(CoreManualClock::new(start)) }
    }

    fn set(&self, now: i64) {
        self.inner.set(now);
    }

    fn now(&self) -> i64 {
        use kline_core::engine::clock::Clock;
        self.inner.now()
    }
}

/// What one `push_raw` call did with its frames: `consumed` frames from the front (all of
/// them unless backpressure stopped the call: resume from there), their trades, and the
/// frames counted and skipped by reason (the first few malformed ones' reasons in `errors`).
#[pyclass(module = "kline_rs._core", frozen, get_all)]
pub struct PushReport {
    consumed: usize,
    trades: usize,
    unknown_symbol: usize,
    malformed: usize,
    other_events: usize,
    backpressure: bool,
    errors: Vec<String>,
}

#[pymethods]
impl PushReport {
    fn __repr__(&self) -> String {
        format!(
            "PushReport(consumed={}, trades={}, unknown_symbol={}, malformed={}, \
             other_events={}, backpressure={}, errors={:?})",
            self.consumed,
            self.trades,
            self.unknown_symbol,
            self.malformed,
            self.other_events,
            if self.backpressure { "True" } else { "False" },
            self.errors
        )
    }
}

#[pyclass(module = "kline_rs._core", frozen)]
pub struct Engine {
    inner: Arc<CoreEngine>,
    interval_names: Vec<String>,
}

/// Closed records → columns (laid out by the core; flat runs expanded with `expand`).
fn closed_columns<'py>(
    py: Python<'py>,
    e: &CoreEngine,
    names: &[String],
    recs: &[Record],
    expand: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let c = RecordColumns::of(e.grids(), recs, expand)
        .map_err(|err| EngineError::new_err(err.to_string()))?;
    let d = kline_columns(py, &c.klines)?;
    d.set_item("symbol", PyList::new(py, c.symbols.iter().map(|s| &**s))?)?;
    d.set_item("interval", PyList::new(py, c.intervals.iter().map(|&i| &names[i as usize]))?)?;
    d.set_item("revision", PyArray1::from_iter(py, c.revisions.iter().map(|&r| i64::from(r))))?;
    d.set_item("gap", PyArray1::from_vec(py, c.gaps))?;
    d.set_item("flat", PyArray1::from_vec(py, c.flat))?;
    Ok(d)
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (intervals, *, partitions=0, grace=250, ring_capacity=65536, outbox_capacity=65536, tz_offset=None, time_unit="ms", pin_threads=true, auto_add=false, push_wait_ms=100, clock=None, late_policy="drop", allowed_lateness=0, detect_id_gaps=false, mark_partial_start=false, spin_us=50, max_ahead_ms=Some(kline_core::engine::DEFAULT_MAX_AHEAD_MS), max_jump_ms=None, max_spill=262144, quote_rule="per-trade"))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        intervals: Vec<String>,
        partitions: usize,
        grace: i64,
        ring_capacity: usize,
        outbox_capacity: usize,
        tz_offset: Option<&str>,
        time_unit: &str,
        pin_threads: bool,
        auto_add: bool,
        push_wait_ms: u64,
        clock: Option<&ManualClock>,
        late_policy: &str,
        allowed_lateness: i64,
        detect_id_gaps: bool,
        mark_partial_start: bool,
        spin_us: u64,
        max_ahead_ms: Option<i64>,
        max_jump_ms: Option<i64>,
        max_spill: usize,
        quote_rule: &str,
    ) -> PyResult<Self> {
        let mut cfg =
            EngineConfig::new(intervals.iter().map(|s| interval(s)).collect::<PyResult<_>>()?);
        cfg.partitions = partitions;
        cfg.grace = grace;
        cfg.max_ahead_ms = max_ahead_ms;
        cfg.max_jump_ms = max_jump_ms;
        cfg.max_spill = max_spill;
        cfg.quote_rule = crate::quote_rule(quote_rule)?;
        cfg.ring_capacity = ring_capacity;
        cfg.outbox_capacity = outbox_capacity;
        cfg.tz_offset_ms = tz(tz_offset)?;
        cfg = cfg.with_time_unit(time_unit_named(time_unit)?);
        cfg.late_policy = LatePolicy::named(late_policy, allowed_lateness)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        cfg.pin_threads = pin_threads;
        cfg.detect_id_gaps = detect_id_gaps;
        cfg.mark_partial_start = mark_partial_start;
        cfg.spin = Duration::from_micros(spin_us);
        cfg.auto_add = auto_add;
        cfg.push_wait = Duration::from_millis(push_wait_ms);
        if let Some(c) = clock {
            cfg.clock = c.inner.clone();
        }
        let names = cfg.intervals.iter().map(ToString::to_string).collect();
        let inner = py.detach(|| CoreEngine::start(cfg)).map_err(engine_err)?;
        Ok(Engine { inner: Arc::new(inner), interval_names: names })
    }

    #[getter]
    fn intervals(&self) -> Vec<String> {
        self.interval_names.clone()
    }

    #[getter]
    fn partitions(&self) -> usize {
        self.inner.partitions()
    }

    #[pyo3(signature = (symbol, *, anchor_3d_ms=None, contract_size=None))]
    fn add_symbol(
        &self,
        py: Python<'_>,
        symbol: &str,
        anchor_3d_ms: Option<i64>,
        contract_size: Option<u32>,
    ) -> PyResult<()> {
        let quote_rule =
            contract_size.map(|size| crate::contract_rule(symbol, size)).transpose()?;
        let spec = SymbolSpec { anchor_3d: anchor_3d_ms, quote_rule };
        py.detach(|| self.inner.add_symbols_with(&[(symbol, spec)])).map_err(engine_err)
    }

    #[pyo3(signature = (symbols, *, anchors_3d_ms=None, contract_sizes=None))]
    fn add_symbols(
        &self,
        py: Python<'_>,
        symbols: Vec<String>,
        anchors_3d_ms: Option<HashMap<String, i64>>,
        contract_sizes: Option<HashMap<String, u32>>,
    ) -> PyResult<()> {
        let (anchors, sizes) =
            (anchors_3d_ms.unwrap_or_default(), contract_sizes.unwrap_or_default());
        let mut list: Vec<(&str, SymbolSpec)> = Vec::with_capacity(symbols.len());
        for s in &symbols {
            let quote_rule = sizes.get(s).map(|&size| crate::contract_rule(s, size)).transpose()?;
            list.push((s.as_str(), SymbolSpec { anchor_3d: anchors.get(s).copied(), quote_rule }));
        }
        py.detach(|| self.inner.add_symbols_with(&list)).map_err(engine_err)
    }

    fn remove_symbol(&self, py: Python<'_>, symbol: &str) -> PyResult<()> {
        py.detach(|| self.inner.remove_symbol(symbol)).map_err(engine_err)
    }

    /// The exchange halted `symbol` (BREAK/HALT): it keeps its state, makes no flat klines.
    fn halt(&self, py: Python<'_>, symbol: &str) -> PyResult<()> {
        py.detach(|| self.inner.halt(symbol)).map_err(engine_err)
    }

    /// `symbol` trades again (TRADING): the halted span stays without rows.
    fn resume(&self, py: Python<'_>, symbol: &str) -> PyResult<()> {
        py.detach(|| self.inner.resume(symbol)).map_err(engine_err)
    }

    fn symbols(&self) -> Vec<String> {
        self.inner.symbols()
    }

    /// Binance websocket text frames (bytes, or a list of them), parsed in Rust.
    fn push_raw<'py>(&self, py: Python<'py>, frames: &Bound<'py, PyAny>) -> PyResult<PushReport> {
        let owned: Vec<Bound<'py, PyBytes>> = if let Ok(b) = frames.cast::<PyBytes>() {
            vec![b.clone()]
        } else {
            frames.try_iter()?.map(|f| Ok(f?.cast_into::<PyBytes>()?)).collect::<PyResult<_>>()?
        };
        let slices: Vec<&[u8]> = owned.iter().map(|b| b.as_bytes()).collect();
        let r = py.detach(|| self.inner.push_raw(slices.iter().copied())).map_err(engine_err)?;
        Ok(PushReport {
            consumed: r.consumed,
            trades: r.trades,
            unknown_symbol: r.unknown_symbol,
            malformed: r.malformed,
            other_events: r.other_events,
            backpressure: r.backpressure,
            errors: r.errors,
        })
    }

    /// One symbol's trades (a `TRADE_DTYPE` array, prices and quantities at 1e-8).
    fn push_trades(
        &self,
        py: Python<'_>,
        symbol: &str,
        trades: PyReadonlyArray1<'_, TradeRow>,
    ) -> PyResult<usize> {
        let trades = trades_of(&trades)?;
        let n = trades.len();
        py.detach(|| self.inner.push_trades(symbol, trades)).map_err(engine_err)?;
        Ok(n)
    }

    /// Returns once everything pushed before has been applied (and the clock looked at).
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.sync()).map_err(engine_err)
    }

    /// `(token, columns)` of closed records worth up to `max_records` klines, flat runs
    /// expanded (a longer run is cut: its rest comes next), or, with `expand=False`, up to
    /// `max_records` records with one row per run spanning its periods, `flat` set.
    #[pyo3(signature = (max_records=65536, *, expand=true))]
    fn poll<'py>(
        &self,
        py: Python<'py>,
        max_records: usize,
        expand: bool,
    ) -> PyResult<(u64, Bound<'py, PyDict>)> {
        let (token, recs) = py.detach(|| self.inner.poll(max_records, expand));
        Ok((token, closed_columns(py, &self.inner, &self.interval_names, &recs, expand)?))
    }

    fn ack(&self, token: u64) -> bool {
        self.inner.ack(token)
    }

    fn nack(&self, token: u64) -> bool {
        self.inner.nack(token)
    }

    /// `(token, slot columns, checkpoints)`: what changed since the last acknowledged
    /// snapshot. `state` is "open", "flat" (quiet since `open_time` at `close`) or "empty".
    /// Every record closed before it is visible to a poll (the worker settles first).
    #[pyo3(name = "snapshot_columns")]
    fn snapshot<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(u64, Bound<'py, PyDict>, Bound<'py, PyDict>)> {
        let snap = py.detach(|| self.inner.snapshot()).map_err(engine_err)?;
        let checkpoints = PyDict::new(py);
        let mut slots = Vec::new();
        for part in &snap.parts {
            slots.extend(part.slots.iter().map(|s| (s.symbol.clone(), s.interval, s.value)));
            for c in &part.checkpoints {
                checkpoints.set_item(&*c.symbol, c.last_id)?;
            }
        }
        Ok((snap.token, self.slot_columns(py, &slots)?, checkpoints))
    }

    /// The symbol's current slots as columns (like a snapshot's), one row per interval.
    fn read_columns<'py>(&self, py: Python<'py>, symbol: &str) -> PyResult<Bound<'py, PyDict>> {
        let (values, _) = py.detach(|| self.inner.read(symbol)).map_err(engine_err)?;
        let name: Arc<str> = symbol.into();
        let slots: Vec<_> =
            values.into_iter().enumerate().map(|(i, v)| (name.clone(), i as u16, v)).collect();
        self.slot_columns(py, &slots)
    }

    /// The symbol's last applied aggTrade id (None before its first trade).
    fn last_id(&self, py: Python<'_>, symbol: &str) -> PyResult<Option<i64>> {
        Ok(py.detach(|| self.inner.read(symbol)).map_err(engine_err)?.1)
    }

    /// Holes in aggTrade ids found live (`detect_id_gaps=True`): `[(symbol, from_id, to_id,
    /// since)]`. The symbol holds its trades until `backfill` + `feed_up`.
    #[pyo3(signature = (max_gaps=65536))]
    fn poll_gaps(&self, max_gaps: usize) -> Vec<(String, i64, i64, i64)> {
        self.inner
            .poll_gaps(max_gaps)
            .into_iter()
            .map(|g| (g.symbol.to_string(), g.from_id, g.to_id, g.since))
            .collect()
    }

    /// The snapshot is durably stored; False if superseded by a newer one or unknown.
    fn ack_snapshot(&self, py: Python<'_>, token: u64) -> PyResult<bool> {
        py.detach(|| self.inner.ack_snapshot(token)).map_err(engine_err)
    }

    /// Puts stored slots (columns as `snapshot` returns them) and checkpoints back. With
    /// `hold`, restored symbols wait for `backfill` + `feed_up` before anything of theirs closes.
    #[pyo3(name = "restore_columns", signature = (columns, checkpoints, *, hold=false))]
    fn restore(
        &self,
        py: Python<'_>,
        columns: &Bound<'_, PyDict>,
        checkpoints: HashMap<String, i64>,
        hold: bool,
    ) -> PyResult<usize> {
        fn col<'py, T: FromPyObjectOwned<'py>>(
            d: &Bound<'py, PyDict>,
            name: &str,
        ) -> PyResult<Vec<T>> {
            d.get_item(name)?
                .ok_or_else(|| PyValueError::new_err(format!("restore: column {name:?} missing")))?
                .try_iter()?
                .map(|v| v?.extract::<T>().map_err(Into::into))
                .collect()
        }
        let symbols: Vec<String> = col(columns, "symbol")?;
        let intervals: Vec<String> = col(columns, "interval")?;
        let states: Vec<String> = col(columns, "state")?;
        let ints = |name: &str| col::<i64>(columns, name);
        let wide = |name: &str| col::<i128>(columns, name);
        let (open_time, close_time) = (ints("open_time")?, ints("close_time")?);
        let (open, high, low, close) = (ints("open")?, ints("high")?, ints("low")?, ints("close")?);
        let (volume, quote, tvol, tquote) = (
            wide("volume")?,
            wide("quote_volume")?,
            wide("taker_buy_volume")?,
            wide("taker_buy_quote_volume")?,
        );
        let (trades, first, last) =
            (ints("trades")?, ints("first_trade_id")?, ints("last_trade_id")?);
        let inexact = ints("inexact_trades")?;
        let exact = wide("quote_volume_exact")?;
        let n = symbols.len();
        let lens = [
            intervals.len(),
            states.len(),
            open_time.len(),
            close.len(),
            volume.len(),
            last.len(),
            inexact.len(),
            exact.len(),
        ];
        if lens.iter().any(|&l| l != n) {
            return Err(PyValueError::new_err("restore: columns differ in length"));
        }
        let mut slots = Vec::with_capacity(n);
        for i in 0..n {
            let iv =
                self.interval_names.iter().position(|x| *x == intervals[i]).ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "restore: interval {:?} is not one of this engine's",
                        intervals[i]
                    ))
                })?;
            let state = SlotState::named(&states[i])
                .map_err(|e| PyValueError::new_err(format!("restore: {e}")))?;
            let kline = Kline {
                open_time: open_time[i],
                close_time: close_time[i],
                open: open[i],
                high: high[i],
                low: low[i],
                close: close[i],
                volume: volume[i],
                quote_volume: quote[i],
                trades: trades[i] as u64,
                taker_buy_volume: tvol[i],
                taker_buy_quote_volume: tquote[i],
                first_trade_id: first[i],
                last_trade_id: last[i],
                inexact_trades: inexact[i] as u64,
                quote_volume_exact: exact[i],
            };
            slots.push((symbols[i].as_str(), iv as u16, slot_value(state, kline)));
        }
        let cks: Vec<(&str, i64)> = checkpoints.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        py.detach(|| self.inner.restore(&slots, &cks, hold)).map_err(engine_err)
    }

    /// The feed of `symbol` (None: all) is down since `since`: closing klines are marked gap
    /// and live trades wait for `backfill` + `feed_up`. With `hold`, nothing of the symbol
    /// closes until `feed_up` (a short catch-up: no gap records, no revisions).
    #[pyo3(signature = (symbol, since, *, hold=false))]
    fn feed_down(
        &self,
        py: Python<'_>,
        symbol: Option<&str>,
        since: i64,
        hold: bool,
    ) -> PyResult<()> {
        py.detach(|| self.inner.feed_down(symbol, since, hold)).map_err(engine_err)
    }

    /// Older trades (a `TRADE_DTYPE` array) for a symbol whose feed is down; False if it is
    /// not in a declared gap.
    fn backfill(
        &self,
        py: Python<'_>,
        symbol: &str,
        trades: PyReadonlyArray1<'_, TradeRow>,
    ) -> PyResult<bool> {
        let trades = trades_of(&trades)?;
        py.detach(|| self.inner.backfill(symbol, trades)).map_err(engine_err)
    }

    /// The feed of `symbol` (None: all) is back: replay the backfill and held trades.
    /// `accept_holes`: give up on ids still missing; `impossible_from`: and the exchange has no
    /// ids from this one on yet (held trades claiming them are refused).
    #[pyo3(signature = (symbol=None, *, accept_holes=false, impossible_from=None))]
    fn feed_up(
        &self,
        py: Python<'_>,
        symbol: Option<&str>,
        accept_holes: bool,
        impossible_from: Option<i64>,
    ) -> PyResult<()> {
        let holes = match (accept_holes, impossible_from) {
            (false, None) => Holes::Ask,
            (true, None) => Holes::Accept,
            (_, Some(id)) => Holes::AcceptBelow(id),
        };
        py.detach(|| self.inner.feed_up(symbol, holes)).map_err(engine_err)
    }

    /// Makes the symbol's worker panic while "applying a trade" (supervision tests).
    fn inject_panic(&self, symbol: &str) -> PyResult<()> {
        self.inner.inject_panic(symbol).map_err(engine_err)
    }

    /// Late trades: `[(symbol, agg_id, price, qty, first_id, last_id, time, buyer_is_maker)]`.
    #[pyo3(signature = (max_trades=65536))]
    #[allow(clippy::type_complexity)]
    fn poll_late(&self, max_trades: usize) -> Vec<(String, i64, i64, i64, i64, i64, i64, bool)> {
        self.inner
            .poll_late(max_trades)
            .into_iter()
            .map(|l| {
                let t = l.trade;
                (
                    l.symbol.to_string(),
                    t.id,
                    t.price,
                    t.qty,
                    t.first_id,
                    t.last_id,
                    t.time,
                    t.buyer_is_maker,
                )
            })
            .collect()
    }

    fn take_errors(&self) -> Vec<String> {
        self.inner.take_errors()
    }

    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.inner.metrics();
        let d = PyDict::new(py);
        d.set_item("messages", m.messages)?;
        d.set_item("unknown_symbol", m.unknown_symbol)?;
        d.set_item("malformed", m.malformed)?;
        d.set_item("other_events", m.other_events)?;
        d.set_item("backpressure", m.backpressure)?;
        d.set_item("unacked", m.unacked)?;
        let parts = PyList::empty(py);
        for p in &m.partitions {
            let pd = PyDict::new(py);
            for (name, value) in p.named() {
                pd.set_item(name, value)?;
            }
            parts.append(pd)?;
        }
        d.set_item("partitions", parts)?;
        Ok(d)
    }

    /// The fd that turns readable when closed records wait; call `arm()` before waiting.
    fn wake_fd(&self) -> i32 {
        self.inner.wake_fd()
    }

    fn arm(&self) {
        self.inner.arm();
    }

    /// Stops and joins the workers (what is on their rings is applied first).
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.inner.shutdown());
    }

    #[getter]
    fn closed_engine(&self) -> bool {
        self.inner.is_shut_down()
    }
}

impl Engine {
    /// Slot values → columns with `state` "open", "flat" (quiet since `open_time` at `close`)
    /// or "empty".
    fn slot_columns<'py>(
        &self,
        py: Python<'py>,
        slots: &[(Arc<str>, u16, SlotValue)],
    ) -> PyResult<Bound<'py, PyDict>> {
        let mut klines = Vec::with_capacity(slots.len());
        let (mut symbols, mut intervals, mut states) = (Vec::new(), Vec::new(), Vec::new());
        for (symbol, interval, value) in slots {
            let (state, kline) = slot_row(value);
            klines.push(kline);
            symbols.push(symbol.to_string());
            intervals.push(self.interval_names[*interval as usize].clone());
            states.push(state.name());
        }
        let d = kline_columns(py, &klines)?;
        d.set_item("symbol", symbols)?;
        d.set_item("interval", intervals)?;
        d.set_item("state", states)?;
        Ok(d)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("EngineError", py.get_type::<EngineError>())?;
    m.add("BackpressureError", py.get_type::<BackpressureError>())?;
    m.add("UnknownSymbolError", py.get_type::<UnknownSymbolError>())?;
    m.add_class::<Engine>()?;
    m.add_class::<PushReport>()?;
    m.add("DEFAULT_MAX_AHEAD_MS", kline_core::engine::DEFAULT_MAX_AHEAD_MS)?;
    m.add_class::<ManualClock>()?;
    Ok(())
}
