//! `IdOrder`: `kline_core::id_order` over `TRADE_DTYPE` arrays.

use crate::trades::{trade_array, trades_of, TradeRow};
use kline_core::id_order::{IdOrder as CoreIdOrder, MAX_HELD};
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use std::collections::HashMap;

/// Each symbol's trades put back in aggTrade id order (`kline_core::id_order`).
#[pyclass(module = "kline_rs._core")]
pub struct IdOrder {
    inner: CoreIdOrder,
}

#[pymethods]
impl IdOrder {
    #[new]
    fn new() -> Self {
        IdOrder { inner: CoreIdOrder::new() }
    }

    /// Restored checkpoints, symbol → last id applied: each expects the id after it.
    fn start(&mut self, checkpoints: HashMap<String, i64>) {
        for (symbol, last_id) in checkpoints {
            self.inner.start(&symbol, last_id);
        }
    }

    /// Takes `trades` (row i is `symbols[i]`'s, at reader position `seqs[i]`; `now`: the
    /// reader's monotonic seconds). Returns, for the trades that can go now (in id order per
    /// symbol), the row that let each go (its symbol is that row's) and the trades, and the
    /// rows that let their symbol go across its hole for the bound.
    #[allow(clippy::type_complexity)]
    fn take<'py>(
        &mut self,
        py: Python<'py>,
        symbols: Vec<PyBackedStr>,
        trades: PyReadonlyArray1<'py, TradeRow>,
        seqs: Vec<u64>,
        now: f64,
    ) -> PyResult<(Bound<'py, PyArray1<usize>>, Bound<'py, PyArray1<TradeRow>>, Vec<usize>)> {
        let trades = trades_of(&trades)?;
        if symbols.len() != trades.len() || seqs.len() != trades.len() {
            return Err(PyValueError::new_err(format!(
                "{} symbols, {} trades and {} positions: one of each per trade",
                symbols.len(),
                trades.len(),
                seqs.len()
            )));
        }
        let batch = symbols.into_iter().zip(trades).zip(seqs).map(|((s, t), q)| (s, t, q));
        let taken = self.inner.take_all(batch, now);
        Ok((PyArray1::from_vec(py, taken.by), trade_array(py, &taken.trades), taken.overflowed))
    }

    /// Gives up `symbol`'s hole: its held trades, in id order.
    fn release<'py>(&mut self, py: Python<'py>, symbol: &str) -> Bound<'py, PyArray1<TradeRow>> {
        let mut out = Vec::new();
        self.inner.release(symbol, &mut out);
        trade_array(py, &out)
    }

    /// The ids `symbol` waits for, `(first, last)`, or None.
    fn hole(&self, symbol: &str) -> Option<(i64, i64)> {
        self.inner.hole(symbol)
    }

    /// Symbols holding trades since before `before`.
    fn overdue(&self, before: f64) -> Vec<String> {
        self.inner.overdue(before)
    }

    /// Symbols holding trades.
    fn waiting(&self) -> Vec<String> {
        self.inner.waiting()
    }

    /// `symbol`'s trades were applied up to time `last_time`.
    fn pushed(&mut self, symbol: &str, last_time: i64) {
        self.inner.pushed(symbol, last_time);
    }

    /// The time the reader's clock may not pass, or None.
    fn time_bound(&self) -> Option<i64> {
        self.inner.time_bound()
    }

    /// The reader's earliest position of a held trade, or None.
    fn first_held_seq(&self) -> Option<u64> {
        self.inner.first_held_seq()
    }

    /// Trades held now.
    #[getter]
    fn held(&self) -> usize {
        self.inner.held()
    }

    /// Trades taken at or below their symbol's next id.
    #[getter]
    fn duplicates(&self) -> u64 {
        self.inner.duplicates()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<IdOrder>()?;
    m.add("MAX_HELD_TRADES", MAX_HELD)?;
    Ok(())
}
