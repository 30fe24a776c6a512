//! Kline columns (numpy) → the core's Arrow batch, handed to readers through the Arrow
//! PyCapsule interface (`__arrow_c_stream__`): pyarrow, polars and pandas take its buffers
//! without a copy.

use kline_core::arrow::{into_stream, kind_of, kline_batch, ColumnKind, Values};
use kline_core::arrow::{ArrowKlineError, DECIMAL_PRECISION};
use numpy::PyReadonlyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

/// Klines as one Arrow record batch (read it with `pyarrow.table`, `polars.DataFrame`, …).
#[pyclass(module = "kline_rs._core", frozen)]
pub struct ArrowKlines {
    batch: arrow_array::RecordBatch,
}

#[pymethods]
impl ArrowKlines {
    /// The Arrow C stream of the batch (the PyCapsule interface); `requested_schema` is not
    /// honoured: the columns come as built.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        PyCapsule::new_with_value(py, into_stream(self.batch.clone()), c"arrow_array_stream")
    }

    fn __len__(&self) -> usize {
        self.batch.num_rows()
    }

    /// Column names, in order.
    #[getter]
    fn column_names(&self) -> Vec<String> {
        self.batch.schema().fields().iter().map(|f| f.name().clone()).collect()
    }
}

/// A contiguous 1-d numpy array's values (a strided field view is refused: numpy strides need
/// not be a multiple of the item size, and such a view would be misread).
fn values<T: numpy::Element + Copy>(
    name: &str,
    col: &Bound<'_, PyAny>,
    what: &str,
) -> PyResult<Vec<T>> {
    let bad =
        || PyValueError::new_err(format!("column {name}: expected a contiguous 1-d {what} array"));
    let a = col.extract::<PyReadonlyArray1<'_, T>>().map_err(|_| bad())?;
    Ok(a.as_slice().map_err(|_| bad())?.to_vec())
}

/// `(name, column)` pairs as numpy gives them → an Arrow batch; each column's type and scale
/// come from its name (`kline_core::arrow::kind_of`). `time_unit`: "ms", "us" or None (detect).
#[pyfunction]
#[pyo3(signature = (columns, time_unit=None))]
pub fn kline_arrow(
    columns: Vec<(String, Bound<'_, PyAny>)>,
    time_unit: Option<&str>,
) -> PyResult<ArrowKlines> {
    let unit = time_unit.map(crate::time_unit_named).transpose()?;
    let mut out = Vec::with_capacity(columns.len());
    for (name, col) in columns {
        let values = match kind_of(&name) {
            ColumnKind::Time | ColumnKind::Count => Values::Ints(values(&name, &col, "int64")?),
            ColumnKind::Decimal(_) => match values::<i64>(&name, &col, "int64") {
                Ok(v) => Values::Ints(v),
                Err(_) => Values::Wide(col.extract::<Vec<i128>>().map_err(|_| {
                    PyValueError::new_err(format!(
                        "column {name}: expected integer mantissas (int64 or Python ints) \
                         below 10^{DECIMAL_PRECISION}"
                    ))
                })?),
            },
            ColumnKind::Flag => Values::Flags(values(&name, &col, "bool")?),
            ColumnKind::Text => Values::Texts(
                col.extract::<Vec<String>>()
                    .map_err(|_| PyValueError::new_err(format!("column {name}: expected texts")))?,
            ),
        };
        out.push((name, values));
    }
    let batch = kline_batch(out, unit)
        .map_err(|e: ArrowKlineError| PyValueError::new_err(e.to_string()))?;
    Ok(ArrowKlines { batch })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ArrowKlines>()?;
    m.add_function(wrap_pyfunction!(kline_arrow, m)?)?;
    Ok(())
}
