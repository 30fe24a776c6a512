//! Klines as an Arrow record batch: prices and base volumes as `decimal128(38, 8)`, quote
//! volumes as `decimal128(38, 16)` (exact, summable by any Arrow reader), open and close times
//! as UTC timestamps in the data's unit. The batch leaves through the Arrow C stream interface
//! ([`into_stream`]): readers take its buffers without a copy.
//!
//! Which column is which is decided here once ([`kind_of`]), by the names the kline tables
//! use everywhere (`open_time`, `volume`, `quote_volume`, …); a caller only hands the values.

use crate::interval::TimeUnit;
use arrow_array::builder::StringBuilder;
use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{
    ArrayRef, BooleanArray, Decimal128Array, Int64Array, RecordBatch, RecordBatchIterator,
    TimestampMicrosecondArray, TimestampMillisecondArray,
};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use std::sync::Arc;

/// Digits of the decimal columns: Arrow's widest `decimal128`. Mantissas at or past
/// `10^38` (1e22 of quote currency in one kline) are refused, never wrapped.
pub const DECIMAL_PRECISION: u8 = 38;

const DECIMAL_LIMIT: i128 = 10i128.pow(DECIMAL_PRECISION as u32);

/// What a kline column holds, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Epoch time (ms or µs): `timestamp[unit, UTC]`.
    Time,
    /// An exact decimal: an integer mantissa with this many decimals.
    Decimal(i8),
    /// A count or an id: `int64`.
    Count,
    /// `bool`.
    Flag,
    /// A name (symbol, interval, slot state): `utf8`.
    Text,
}

/// The kind of the kline column `name`: the one table of which field has which scale.
pub fn kind_of(name: &str) -> ColumnKind {
    match name {
        "open_time" | "close_time" => ColumnKind::Time,
        "open" | "high" | "low" | "close" | "volume" | "taker_buy_volume" => ColumnKind::Decimal(8),
        "quote_volume" | "taker_buy_quote_volume" | "quote_volume_exact" => ColumnKind::Decimal(16),
        "gap" | "flat" => ColumnKind::Flag,
        "symbol" | "interval" | "state" => ColumnKind::Text,
        _ => ColumnKind::Count,
    }
}

/// One column's values as the caller has them.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Ints(Vec<i64>),
    /// Mantissas that may pass 64 bits (volume sums).
    Wide(Vec<i128>),
    Flags(Vec<bool>),
    Texts(Vec<String>),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::Ints(v) => v.len(),
            Values::Wide(v) => v.len(),
            Values::Flags(v) => v.len(),
            Values::Texts(v) => v.len(),
        }
    }

    fn what(&self) -> &'static str {
        match self {
            Values::Ints(_) => "64-bit integers",
            Values::Wide(_) => "wide integers",
            Values::Flags(_) => "booleans",
            Values::Texts(_) => "texts",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArrowKlineError {
    #[error("column {name}: {kind:?} cannot be built from {what}")]
    WrongValues { name: String, kind: ColumnKind, what: &'static str },
    #[error("column {name} has {got} rows where {first} has {want}")]
    Ragged { name: String, got: usize, first: String, want: usize },
    #[error(
        "column {name}, row {row}: mantissa {value} does not fit decimal128({DECIMAL_PRECISION})"
    )]
    PastPrecision { name: String, row: usize, value: i128 },
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}

/// A record batch of the given columns, in their order. `unit`: the times' unit (`None`:
/// detected from the first time value; milliseconds when there is none).
pub fn kline_batch(
    columns: Vec<(String, Values)>,
    unit: Option<TimeUnit>,
) -> Result<RecordBatch, ArrowKlineError> {
    let unit = unit.unwrap_or_else(|| detect_unit(&columns));
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    let rows = columns.first().map(|(name, v)| (name.clone(), v.len()));
    for (name, values) in columns {
        if let Some((first, want)) = &rows {
            if values.len() != *want {
                let got = values.len();
                return Err(ArrowKlineError::Ragged {
                    name,
                    got,
                    first: first.clone(),
                    want: *want,
                });
            }
        }
        let kind = kind_of(&name);
        let array = column(&name, kind, values, unit)?;
        fields.push(Field::new(name, array.data_type().clone(), false));
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

fn detect_unit(columns: &[(String, Values)]) -> TimeUnit {
    columns
        .iter()
        .find_map(|(name, v)| match (kind_of(name), v) {
            (ColumnKind::Time, Values::Ints(t)) => t.first().copied(),
            _ => None,
        })
        .map_or(TimeUnit::Millis, TimeUnit::detect)
}

fn column(
    name: &str,
    kind: ColumnKind,
    values: Values,
    unit: TimeUnit,
) -> Result<ArrayRef, ArrowKlineError> {
    let utc = Some(Arc::from("UTC"));
    Ok(match (kind, values) {
        (ColumnKind::Time, Values::Ints(t)) => match unit {
            TimeUnit::Millis => Arc::new(TimestampMillisecondArray::from(t).with_timezone_opt(utc)),
            TimeUnit::Micros => Arc::new(TimestampMicrosecondArray::from(t).with_timezone_opt(utc)),
        },
        (ColumnKind::Decimal(scale), Values::Ints(v)) => {
            decimal(name, v.into_iter().map(i128::from).collect(), scale)?
        }
        (ColumnKind::Decimal(scale), Values::Wide(v)) => decimal(name, v, scale)?,
        (ColumnKind::Count, Values::Ints(v)) => Arc::new(Int64Array::from(v)),
        (ColumnKind::Flag, Values::Flags(v)) => Arc::new(BooleanArray::from(v)),
        (ColumnKind::Text, Values::Texts(v)) => {
            let bytes = v.iter().map(String::len).sum();
            let mut b = StringBuilder::with_capacity(v.len(), bytes);
            v.iter().for_each(|s| b.append_value(s));
            Arc::new(b.finish())
        }
        (kind, values) => {
            let (name, what) = (name.to_string(), values.what());
            return Err(ArrowKlineError::WrongValues { name, kind, what });
        }
    })
}

fn decimal(name: &str, v: Vec<i128>, scale: i8) -> Result<ArrayRef, ArrowKlineError> {
    if let Some(row) = v.iter().position(|x| !(-DECIMAL_LIMIT < *x && *x < DECIMAL_LIMIT)) {
        return Err(ArrowKlineError::PastPrecision { name: name.into(), row, value: v[row] });
    }
    let array = Decimal128Array::from(v).with_precision_and_scale(DECIMAL_PRECISION, scale)?;
    Ok(Arc::new(array))
}

/// The batch as an Arrow C stream of one batch (its buffers are shared, not copied).
pub fn into_stream(batch: RecordBatch) -> FFI_ArrowArrayStream {
    let schema = batch.schema();
    FFI_ArrowArrayStream::new(Box::new(RecordBatchIterator::new([Ok(batch)], schema)))
}

/// The Arrow type of a column of kind `kind` (what [`kline_batch`] builds).
pub fn data_type(kind: ColumnKind, unit: TimeUnit) -> DataType {
    match kind {
        ColumnKind::Time => DataType::Timestamp(
            match unit {
                TimeUnit::Millis => arrow_schema::TimeUnit::Millisecond,
                TimeUnit::Micros => arrow_schema::TimeUnit::Microsecond,
            },
            Some(Arc::from("UTC")),
        ),
        ColumnKind::Decimal(scale) => DataType::Decimal128(DECIMAL_PRECISION, scale),
        ColumnKind::Count => DataType::Int64,
        ColumnKind::Flag => DataType::Boolean,
        ColumnKind::Text => DataType::Utf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::ffi_stream::RecordBatchStreamReader;
    use arrow_array::Array;

    fn cols() -> Vec<(String, Values)> {
        vec![
            ("open_time".into(), Values::Ints(vec![1_700_000_000_000, 1_700_000_060_000])),
            ("open".into(), Values::Ints(vec![12_345_678_901, 1])),
            ("quote_volume".into(), Values::Wide(vec![i128::from(i64::MAX) * 1_000, -5])),
            ("trades".into(), Values::Ints(vec![3, 0])),
            ("gap".into(), Values::Flags(vec![false, true])),
            ("symbol".into(), Values::Texts(vec!["BTCUSDT".into(), "ETHUSDT".into()])),
        ]
    }

    #[test]
    fn each_column_takes_the_type_and_scale_its_name_says() {
        let b = kline_batch(cols(), None).unwrap();
        let types: Vec<DataType> =
            b.schema().fields().iter().map(|f| f.data_type().clone()).collect();
        let want: Vec<DataType> = ["open_time", "open", "quote_volume", "trades", "gap", "symbol"]
            .iter()
            .map(|n| data_type(kind_of(n), TimeUnit::Millis))
            .collect();
        assert_eq!(types, want);
        assert_eq!(want[1], DataType::Decimal128(38, 8));
        assert_eq!(want[2], DataType::Decimal128(38, 16));
        let open = b.column(1).as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!(open.value_as_string(0), "123.45678901");
        let quote = b.column(2).as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!(quote.value(0), i128::from(i64::MAX) * 1_000, "past 64 bits, exact");
        assert_eq!(quote.value_as_string(1), "-0.0000000000000005");
        let t = b.column(0).as_any().downcast_ref::<TimestampMillisecondArray>().unwrap();
        assert_eq!(t.value(1), 1_700_000_060_000);
    }

    #[test]
    fn microsecond_times_are_detected_or_taken_as_given() {
        let us = vec![("close_time".into(), Values::Ints(vec![1_700_000_000_000_000]))];
        let b = kline_batch(us.clone(), None).unwrap();
        assert_eq!(b.schema().field(0).data_type(), &data_type(ColumnKind::Time, TimeUnit::Micros));
        let b = kline_batch(us, Some(TimeUnit::Millis)).unwrap();
        assert_eq!(b.schema().field(0).data_type(), &data_type(ColumnKind::Time, TimeUnit::Millis));
        let empty = kline_batch(vec![("open_time".into(), Values::Ints(vec![]))], None).unwrap();
        assert_eq!(empty.num_rows(), 0);
        assert_eq!(
            empty.schema().field(0).data_type(),
            &data_type(ColumnKind::Time, TimeUnit::Millis)
        );
    }

    #[test]
    fn a_mantissa_past_the_precision_or_values_of_the_wrong_kind_are_refused() {
        let big = vec![("volume".into(), Values::Wide(vec![0, DECIMAL_LIMIT]))];
        let e = kline_batch(big, None).unwrap_err().to_string();
        assert!(e.contains("column volume, row 1") && e.contains("decimal128(38)"), "{e}");
        let edge =
            vec![("volume".into(), Values::Wide(vec![DECIMAL_LIMIT - 1, 1 - DECIMAL_LIMIT]))];
        assert!(kline_batch(edge, None).is_ok(), "38 nines fit");
        let wrong = vec![("open".into(), Values::Texts(vec!["1.0".into()]))];
        let e = kline_batch(wrong, None).unwrap_err().to_string();
        assert_eq!(e, "column open: Decimal(8) cannot be built from texts");
        let ragged = vec![
            ("open_time".into(), Values::Ints(vec![1, 2])),
            ("open".into(), Values::Ints(vec![1])),
        ];
        let e = kline_batch(ragged, None).unwrap_err().to_string();
        assert_eq!(e, "column open has 1 rows where open_time has 2");
    }

    #[test]
    fn the_stream_hands_the_batch_over_whole() {
        let b = kline_batch(cols(), None).unwrap();
        let reader = RecordBatchStreamReader::try_new(into_stream(b.clone())).unwrap();
        let got: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        assert_eq!(got, vec![b]);
        assert!(got[0].column(4).as_any().downcast_ref::<BooleanArray>().unwrap().value(1));
        assert_eq!(got[0].column(5).len(), 2);
    }
}
