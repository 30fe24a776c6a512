//! Binance websocket frames in one pass: `aggTrade` and `trade` events, plain or wrapped in a
//! combined stream (`{"stream":…,"data":…}`); any other event is recognised and skipped.
//!
//! Fields are read leniently (a depth update's `a` is an array, not an id) and checked only for
//! the event that needs them, so one parse serves every kind of frame.

use crate::decimal::parse_fixed8;
use crate::trade::Trade;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// A field as found: absent, of the expected kind, or something else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Field<T> {
    #[default]
    Missing,
    Ok(T),
    Wrong,
}

impl<T> Field<T> {
    fn need(self, name: &str) -> Result<T, String> {
        match self {
            Field::Ok(v) => Ok(v),
            Field::Missing => Err(format!("missing field {name:?}")),
            Field::Wrong => Err(format!("field {name:?} has the wrong type")),
        }
    }
}

/// Accepts any JSON value; keeps what `pick` understands.
struct Lenient<T>(std::marker::PhantomData<T>);

macro_rules! wrong {
    ($($name:ident: $ty:ty),*) => {
        $(fn $name<E: de::Error>(self, _: $ty) -> Result<Self::Value, E> { Ok(Field::Wrong) })*
    };
}

/// The visitor methods every lenient field shares: any null, array or object (skipped
/// whole) is of the wrong kind.
macro_rules! any_other_kind {
    () => {
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Field::Wrong)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Field::Wrong)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Field::Wrong)
        }
    };
}

impl<'de> Visitor<'de> for Lenient<i64> {
    type Value = Field<i64>;
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Field::Ok(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(Field::Wrong, Field::Ok))
    }
    wrong!(visit_f64: f64, visit_bool: bool, visit_str: &str);
    any_other_kind!();
}

impl<'de> Visitor<'de> for Lenient<bool> {
    type Value = Field<bool>;
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Field::Ok(v))
    }
    wrong!(visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);
    any_other_kind!();
}

struct LenientStr;

impl<'de> Visitor<'de> for LenientStr {
    type Value = Field<Cow<'de, str>>;
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Ok(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Ok(Cow::Owned(v.to_owned())))
    }
    wrong!(visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_bool: bool);
    any_other_kind!();
}

fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Field<i64>, D::Error> {
    d.deserialize_any(Lenient::<i64>(std::marker::PhantomData))
}

fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Field<bool>, D::Error> {
    d.deserialize_any(Lenient::<bool>(std::marker::PhantomData))
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Field<Cow<'de, str>>, D::Error> {
    d.deserialize_any(LenientStr)
}

/// The fields an aggTrade or trade event may have; everything else is skipped.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Fields<'a> {
    #[serde(borrow, deserialize_with = "text")]
    pub(crate) e: Field<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "text")]
    pub(crate) s: Field<Cow<'a, str>>,
    /// aggTrade id (in a `trade` event, the seller's order id: see `t`).
    #[serde(deserialize_with = "int")]
    pub(crate) a: Field<i64>,
    #[serde(deserialize_with = "int")]
    pub(crate) t: Field<i64>,
    #[serde(borrow, deserialize_with = "text")]
    pub(crate) p: Field<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "text")]
    pub(crate) q: Field<Cow<'a, str>>,
    #[serde(deserialize_with = "int")]
    pub(crate) f: Field<i64>,
    #[serde(deserialize_with = "int")]
    pub(crate) l: Field<i64>,
    #[serde(rename = "T", deserialize_with = "int")]
    pub(crate) time: Field<i64>,
    #[serde(deserialize_with = "boolean")]
    pub(crate) m: Field<bool>,
}

/// A frame: the event's fields at the top, or under `data` in a combined stream.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Frame<'a> {
    #[serde(borrow, deserialize_with = "text")]
    stream: Field<Cow<'a, str>>,
    #[serde(borrow)]
    data: Option<Fields<'a>>,
    #[serde(borrow, deserialize_with = "text")]
    e: Field<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "text")]
    s: Field<Cow<'a, str>>,
    #[serde(deserialize_with = "int")]
    a: Field<i64>,
    #[serde(deserialize_with = "int")]
    t: Field<i64>,
    #[serde(borrow, deserialize_with = "text")]
    p: Field<Cow<'a, str>>,
    #[serde(borrow, deserialize_with = "text")]
    q: Field<Cow<'a, str>>,
    #[serde(deserialize_with = "int")]
    f: Field<i64>,
    #[serde(deserialize_with = "int")]
    l: Field<i64>,
    #[serde(rename = "T", deserialize_with = "int")]
    time: Field<i64>,
    #[serde(deserialize_with = "boolean")]
    m: Field<bool>,
}

/// One websocket message, understood. The symbol borrows from the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    Trade {
        symbol: Cow<'a, str>,
        trade: Trade,
    },
    /// An event that carries no trade (kline, depth, bookTicker, subscription reply …).
    Other {
        event: Cow<'a, str>,
    },
}

fn decimal(v: Field<Cow<'_, str>>, name: &str) -> Result<i64, String> {
    let text = v.need(name)?;
    parse_fixed8(text.as_bytes()).map_err(|e| format!("field {name:?}: {e}"))
}

impl<'a> Fields<'a> {
    /// The fields of an aggTrade (a websocket `aggTrade` event or a REST `aggTrades` element:
    /// the same keys) as a trade: the one aggTrade → [`Trade`] mapping of the JSON parsers.
    pub(crate) fn agg_trade(self) -> Result<Trade, String> {
        Ok(Trade {
            id: self.a.need("a")?,
            price: decimal(self.p, "p")?,
            qty: decimal(self.q, "q")?,
            first_id: self.f.need("f")?,
            last_id: self.l.need("l")?,
            time: self.time.need("T")?,
            buyer_is_maker: self.m.need("m")?,
        })
    }

    pub(crate) fn message(mut self) -> Result<Message<'a>, String> {
        let kind = match std::mem::take(&mut self.e) {
            Field::Ok(e) => e,
            Field::Missing => Cow::Borrowed(""),
            Field::Wrong => return Err("field \"e\" has the wrong type".into()),
        };
        let trade = match &*kind {
            "aggTrade" => {
                let symbol = std::mem::take(&mut self.s);
                return Ok(Message::Trade { trade: self.agg_trade()?, symbol: symbol.need("s")? });
            }
            "trade" => {
                let id = self.t.need("t")?;
                Trade {
                    id,
                    price: decimal(self.p, "p")?,
                    qty: decimal(self.q, "q")?,
                    first_id: id,
                    last_id: id,
                    time: self.time.need("T")?,
                    buyer_is_maker: self.m.need("m")?,
                }
            }
            _ => return Ok(Message::Other { event: kind }),
        };
        Ok(Message::Trade { symbol: self.s.need("s")?, trade })
    }
}

/// Parses one websocket text frame: the fast scanner for the usual shapes, serde for the rest.
pub fn parse_ws_message(frame: &[u8]) -> Result<Message<'_>, String> {
    match super::ws_fast::scan(frame) {
        Some(fields) => fields.message(),
        None => parse_ws_serde(frame),
    }
}

/// The reference parser (serde): every frame the fast scanner declines.
pub fn parse_ws_serde(frame: &[u8]) -> Result<Message<'_>, String> {
    let f: Frame<'_> = serde_json::from_slice(frame).map_err(|e| format!("invalid JSON: {e}"))?;
    match (f.stream, f.data) {
        (Field::Ok(_), Some(data)) => data.message(),
        (Field::Ok(_), None) => Err("combined-stream message without \"data\"".into()),
        (Field::Wrong, _) => Err("field \"stream\" has the wrong type".into()),
        (Field::Missing, _) => {
            let top = Fields {
                e: f.e,
                s: f.s,
                a: f.a,
                t: f.t,
                p: f.p,
                q: f.q,
                f: f.f,
                l: f.l,
                time: f.time,
                m: f.m,
            };
            top.message()
        }
    }
}
