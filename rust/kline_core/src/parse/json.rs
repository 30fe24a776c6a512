//! Binance JSON: REST `aggTrades` arrays (websocket frames: see [`super::ws`]).

use super::ws::Fields;
use crate::decimal::parse_fixed8;
use crate::trade::Trade;
use serde::Deserialize;
use std::borrow::Cow;

pub use super::ws::{parse_ws_message, Message};

fn json_error(e: &serde_json::Error) -> String {
    format!("invalid JSON: {e}")
}

/// Parses a REST `/api/v3/aggTrades` (or futures `/fapi/v1/aggTrades`) response body.
/// A bad element is reported with its index.
pub fn parse_rest_agg_trades(body: &[u8]) -> Result<Vec<Trade>, String> {
    let items: Vec<Fields<'_>> = serde_json::from_slice(body).map_err(|e| json_error(&e))?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, ev)| ev.agg_trade().map_err(|e| format!("aggTrade #{i}: {e}")))
        .collect()
}

/// One element of a REST `historicalTrades` / `trades` reply (`id price qty quoteQty time
/// isBuyerMaker isBestMatch`); other fields are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestTrade<'a> {
    id: Option<i64>,
    #[serde(borrow)]
    price: Option<Cow<'a, str>>,
    #[serde(borrow)]
    qty: Option<Cow<'a, str>>,
    time: Option<i64>,
    is_buyer_maker: Option<bool>,
}

impl RestTrade<'_> {
    /// A raw trade as an aggTrade of one (its id is both the first and the last).
    fn trade(&self) -> Result<Trade, String> {
        let need = |v: Option<i64>, name: &str| v.ok_or_else(|| format!("missing field {name:?}"));
        let decimal = |v: &Option<Cow<'_, str>>, name: &str| {
            let text = v.as_deref().ok_or_else(|| format!("missing field {name:?}"))?;
            parse_fixed8(text.as_bytes()).map_err(|e| format!("field {name:?}: {e}"))
        };
        let id = need(self.id, "id")?;
        Ok(Trade {
            id,
            price: decimal(&self.price, "price")?,
            qty: decimal(&self.qty, "qty")?,
            first_id: id,
            last_id: id,
            time: need(self.time, "time")?,
            buyer_is_maker: self.is_buyer_maker.ok_or("missing field \"isBuyerMaker\"")?,
        })
    }
}

/// Parses a REST `historicalTrades` (or `trades`) reply: each raw trade as an aggTrade of
/// one. A bad element is reported with its index.
pub fn parse_rest_trades(body: &[u8]) -> Result<Vec<Trade>, String> {
    let items: Vec<RestTrade<'_>> = serde_json::from_slice(body).map_err(|e| json_error(&e))?;
    items
        .iter()
        .enumerate()
        .map(|(i, t)| t.trade().map_err(|e| format!("trade #{i}: {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGG: &str = r#"{"stream":"ethusdt@aggTrade","data":{"e":"aggTrade","E":1675759520848,"s":"ETHUSDT","a":226532,"p":"1632.46000000","q":"0.34305000","f":228423,"l":228423,"T":1675759520847,"m":false,"M":true,"st":1}}"#;
    const RAW: &str = r#"{"e":"trade","E":1639351062244,"s":"ETHUSDT","t":705291099,"p":"4149.74000000","q":"0.43870000","b":7038593583,"a":7038593613,"T":1639351062243,"m":true,"M":true}"#;

    #[test]
    fn rest_raw_trades_are_aggtrades_of_one_and_a_bad_one_is_named() {
        let body = br#"[{"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012","time":1499865549590,"isBuyerMaker":true,"isBestMatch":true}]"#;
        let got = parse_rest_trades(body).unwrap();
        assert_eq!(
            got,
            [Trade {
                id: 28457,
                price: 400_000_100,
                qty: 1_200_000_000,
                first_id: 28457,
                last_id: 28457,
                time: 1_499_865_549_590,
                buyer_is_maker: true,
            }]
        );
        let e = parse_rest_trades(br#"[{"id":1,"price":"1","qty":"1","time":5}]"#).unwrap_err();
        assert_eq!(e, "trade #0: missing field \"isBuyerMaker\"");
        let e = parse_rest_trades(
            br#"[{"id":1,"price":"1.000000001","qty":"1","time":5,"isBuyerMaker":false}]"#,
        )
        .unwrap_err();
        assert!(e.starts_with("trade #0: field \"price\": more than 8 decimals"), "{e}");
    }

    #[test]
    fn combined_agg_trade() {
        let Message::Trade { symbol, trade } = parse_ws_message(AGG.as_bytes()).unwrap() else {
            panic!("not a trade")
        };
        assert_eq!(symbol, "ETHUSDT");
        assert_eq!(trade.id, 226_532);
        assert_eq!(trade.price, 163_246_000_000);
        assert_eq!(
            (trade.first_id, trade.last_id, trade.time),
            (228_423, 228_423, 1_675_759_520_847)
        );
        assert!(!trade.buyer_is_maker);
    }

    #[test]
    fn raw_trade_uses_t_not_the_order_id_a() {
        let Message::Trade { trade, .. } = parse_ws_message(RAW.as_bytes()).unwrap() else {
            panic!("not a trade")
        };
        assert_eq!(
            (trade.id, trade.first_id, trade.last_id),
            (705_291_099, 705_291_099, 705_291_099)
        );
    }

    #[test]
    fn other_events_and_errors() {
        let depth = br#"{"stream":"x@depth","data":{"e":"depthUpdate","b":[]}}"#;
        assert_eq!(parse_ws_message(depth), Ok(Message::Other { event: "depthUpdate".into() }));
        assert_eq!(
            parse_ws_message(br#"{"result":null,"id":1}"#),
            Ok(Message::Other { event: "".into() })
        );
        let cases: [(&[u8], &str); 6] = [
            (b"{not json", "invalid JSON"),
            (
                br#"{"e":"aggTrade","s":"X","a":1,"p":"1","q":"1","f":1,"l":1,"m":true}"#,
                "missing field \"T\"",
            ),
            (
                br#"{"e":"aggTrade","s":"X","a":"1","p":"1","q":"1","f":1,"l":1,"T":1,"m":true}"#,
                "field \"a\" has the wrong type",
            ),
            (
                br#"{"e":"aggTrade","s":"X","a":1,"p":"1e3","q":"1","f":1,"l":1,"T":1,"m":true}"#,
                "field \"p\": malformed",
            ),
            (
                br#"{"e":"aggTrade","a":1,"p":"1","q":"1","f":1,"l":1,"T":1,"m":true}"#,
                "missing field \"s\"",
            ),
            (br#"{"stream":"x"}"#, "without \"data\""),
        ];
        for (frame, want) in cases {
            let err = parse_ws_message(frame).unwrap_err();
            assert!(err.contains(want), "{err} lacks {want}");
        }
    }

    #[test]
    fn rest_array() {
        let body = br#"[{"M":true,"T":1577977823305,"a":202790190,"f":222825297,"l":222825297,"m":false,"p":"7139.89000000","q":"0.06702300"}]"#;
        let trades = parse_rest_agg_trades(body).unwrap();
        assert_eq!(trades[0].id, 202_790_190);
        let err = parse_rest_agg_trades(br#"[{"a":1}]"#).unwrap_err();
        assert!(err.starts_with("aggTrade #0: missing field"), "{err}");
    }
}

#[cfg(test)]
mod no_panic {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_bytes_give_a_result_not_a_panic(frame in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_ws_message(&frame);
            let _ = parse_rest_agg_trades(&frame);
            let _ = parse_rest_trades(&frame);
        }

        #[test]
        fn mangled_real_messages_give_a_result_not_a_panic(
            cut in 0usize..220, byte in any::<u8>(), at in 0usize..220,
        ) {
            let base = br#"{"stream":"ethusdt@aggTrade","data":{"e":"aggTrade","E":1675759520848,"s":"ETHUSDT","a":226532,"p":"1632.46000000","q":"0.34305000","f":228423,"l":228423,"T":1675759520847,"m":false,"M":true}}"#;
            let mut frame = base[..cut.min(base.len())].to_vec();
            if !frame.is_empty() {
                let i = at % frame.len();
                frame[i] = byte;
            }
            let _ = parse_ws_message(&frame);
        }
    }
}
