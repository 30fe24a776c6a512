//! Trades in as one numpy structured array (`TRADE_DTYPE`): named fields, so a price cannot
//! be passed where a quantity goes, read without a copy of the array.

use kline_core::Trade;
use numpy::{Element, PyArrayDescr, PyArrayDescrMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

/// One row of `TRADE_DTYPE` (C layout, aligned: 6 × int64 then a bool, 56 bytes).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct TradeRow {
    agg_id: i64,
    price: i64,
    qty: i64,
    first_id: i64,
    last_id: i64,
    time: i64,
    buyer_is_maker: bool,
}

static DTYPE: PyOnceLock<Py<PyArrayDescr>> = PyOnceLock::new();

/// The numpy dtype of a trade row: `agg_id, price, qty, first_id, last_id, time` (int64;
/// prices and quantities at 1e-8) and `buyer_is_maker` (bool), aligned as C lays them out.
/// A function, not a module constant: importing `_core` must not import numpy.
#[pyfunction]
pub fn trade_dtype(py: Python<'_>) -> PyResult<Bound<'_, PyArrayDescr>> {
    let d = DTYPE.get_or_try_init(py, || -> PyResult<_> {
        let fields: Vec<(&str, &str)> = vec![
            ("agg_id", "<i8"),
            ("price", "<i8"),
            ("qty", "<i8"),
            ("first_id", "<i8"),
            ("last_id", "<i8"),
            ("time", "<i8"),
            ("buyer_is_maker", "?"),
        ];
        let kwargs = PyDict::new(py);
        kwargs.set_item("align", true)?;
        let dtype = py.import("numpy")?.getattr("dtype")?.call((fields,), Some(&kwargs))?;
        let descr = dtype.cast_into::<PyArrayDescr>()?;
        assert_eq!(descr.itemsize(), std::mem::size_of::<TradeRow>(), "TRADE_DTYPE layout");
        Ok(descr.unbind())
    })?;
    Ok(d.bind(py).clone())
}

// SAFETY: `TradeRow` is `repr(C)` plain data whose layout `trade_dtype` describes (checked
// by the item-size assertion and numpy's field offsets for `align=True`).
unsafe impl Element for TradeRow {
    const IS_COPY: bool = true;

    fn get_dtype(py: Python<'_>) -> Bound<'_, PyArrayDescr> {
        trade_dtype(py).expect("numpy builds TRADE_DTYPE")
    }

    fn clone_ref(&self, _py: Python<'_>) -> Self {
        *self
    }
}

/// A `TRADE_DTYPE` array → the core's trades (copied, so workers never touch Python memory).
pub fn trades_of(rows: &PyReadonlyArray1<'_, TradeRow>) -> PyResult<Vec<Trade>> {
    Ok(rows
        .as_array()
        .iter()
        .map(|r| Trade {
            id: r.agg_id,
            price: r.price,
            qty: r.qty,
            first_id: r.first_id,
            last_id: r.last_id,
            time: r.time,
            buyer_is_maker: r.buyer_is_maker,
        })
        .collect())
}

/// Core trades → a `TRADE_DTYPE` array.
pub fn trade_array<'py>(
    py: Python<'py>,
    trades: &[Trade],
) -> Bound<'py, numpy::PyArray1<TradeRow>> {
    let rows: Vec<TradeRow> = trades
        .iter()
        .map(|t| TradeRow {
            agg_id: t.id,
            price: t.price,
            qty: t.qty,
            first_id: t.first_id,
            last_id: t.last_id,
            time: t.time,
            buyer_is_maker: t.buyer_is_maker,
        })
        .collect();
    numpy::PyArray1::from_vec(py, rows)
}

/// A REST `aggTrades` reply body → a `TRADE_DTYPE` array (a bad element: ParseError).
#[pyfunction]
pub fn parse_agg_trades<'py>(
    py: Python<'py>,
    body: &[u8],
) -> PyResult<Bound<'py, numpy::PyArray1<TradeRow>>> {
    let trades = kline_core::parse::json::parse_rest_agg_trades(body)
        .map_err(|e| crate::ParseError::new_err(format!("aggTrades: {e}")))?;
    Ok(trade_array(py, &trades))
}

/// A REST `historicalTrades` reply body → a `TRADE_DTYPE` array of aggTrades of one trade.
#[pyfunction]
pub fn parse_trades<'py>(
    py: Python<'py>,
    body: &[u8],
) -> PyResult<Bound<'py, numpy::PyArray1<TradeRow>>> {
    let trades = kline_core::parse::json::parse_rest_trades(body)
        .map_err(|e| crate::ParseError::new_err(format!("historicalTrades: {e}")))?;
    Ok(trade_array(py, &trades))
}
