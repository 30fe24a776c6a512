//! A hand-written scanner for the usual websocket frame: one flat JSON object, or a
//! combined-stream wrapper around one. It declines (returns `None`) anything it is not sure
//! of — escapes, nested arrays, odd numbers, duplicate fields, bad UTF-8 — and the serde
//! parser takes over, so results are the same by construction (checked by a property test).

use super::digits::{plain_run, up_to_16_digits};
use super::ws::{Field, Fields};
use std::borrow::Cow;

struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
}

/// A scalar JSON value.
enum Value<'a> {
    Str(&'a str),
    Int(i64),
    /// A valid number with a fraction: not an i64.
    OtherNumber,
    Bool(bool),
    Null,
}

impl<'a> Scanner<'a> {
    #[inline(always)]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    #[inline(always)]
    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (*self.s.get(self.i)? == c).then(|| self.i += 1)
    }

    /// A string without escapes or control characters, plain ASCII read 8 bytes at a time
    /// (the rest a byte at a time); ASCII needs no UTF-8 check.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        while let Some(chunk) = self.s.get(self.i..self.i + 8) {
            let n = plain_run(u64::from_le_bytes(chunk.try_into().ok()?));
            self.i += n;
            if n < 8 {
                break;
            }
        }
        let mut ascii = true;
        loop {
            let c = *self.s.get(self.i)?;
            match c {
                b'"' => break,
                b'\\' => return None,
                0..=0x1f => return None,
                0x80.. => ascii = false,
                _ => {}
            }
            self.i += 1;
        }
        let raw = &self.s[start..self.i];
        self.i += 1;
        if ascii {
            // SAFETY: every byte is below 0x80, so the slice is valid UTF-8.
            Some(unsafe { std::str::from_utf8_unchecked(raw) })
        } else {
            std::str::from_utf8(raw).ok()
        }
    }

    #[inline(always)]
    fn number(&mut self) -> Option<Value<'a>> {
        let neg = self.s.get(self.i) == Some(&b'-');
        if neg {
            self.i += 1;
        }
        let digits_start = self.i;
        let mut v: i64 = 0;
        let mut overflow = false;
        if let Some((magnitude, n)) = self.s.get(self.i..self.i + 16).and_then(up_to_16_digits) {
            // At most 16 digits: no overflow; a 17th is read by the loop below.
            v = if neg { -(magnitude as i64) } else { magnitude as i64 };
            self.i += n;
        }
        while let Some(&c) = self.s.get(self.i) {
            if !c.is_ascii_digit() {
                break;
            }
            let d = i64::from(c - b'0');
            match v
                .checked_mul(10)
                .and_then(|x| if neg { x.checked_sub(d) } else { x.checked_add(d) })
            {
                Some(x) => v = x,
                None => overflow = true,
            }
            self.i += 1;
        }
        let n = self.i - digits_start;
        if n == 0 || (n > 1 && self.s[digits_start] == b'0') {
            return None;
        }
        if overflow {
            return None; // serde reads it as a float, or refuses it: let it
        }
        let mut other = neg && v == 0; // serde reads -0 as the float -0.0
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            let f = self.i;
            while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
            if self.i == f {
                return None;
            }
            other = true;
        }
        if let Some(b'e' | b'E') = self.s.get(self.i) {
            return None; // exponents can overflow a float: serde words that error
        }
        Some(if other { Value::OtherNumber } else { Value::Int(v) })
    }

    fn word(&mut self, w: &[u8], v: Value<'a>) -> Option<Value<'a>> {
        self.s[self.i..].starts_with(w).then(|| {
            self.i += w.len();
            v
        })
    }

    /// A scalar value; `None` for objects, arrays and anything malformed.
    #[inline(always)]
    fn scalar(&mut self) -> Option<Value<'a>> {
        self.ws();
        match *self.s.get(self.i)? {
            b'"' => self.string().map(Value::Str),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.word(b"true", Value::Bool(true)),
            b'f' => self.word(b"false", Value::Bool(false)),
            b'n' => self.word(b"null", Value::Null),
            _ => None,
        }
    }
}

fn int(v: Value<'_>) -> Field<i64> {
    match v {
        Value::Int(i) => Field::Ok(i),
        _ => Field::Wrong,
    }
}

fn text(v: Value<'_>) -> Field<Cow<'_, str>> {
    match v {
        Value::Str(s) => Field::Ok(Cow::Borrowed(s)),
        _ => Field::Wrong,
    }
}

/// Sets a field once; a second occurrence is a duplicate, which serde refuses: decline.
fn set<T>(slot: &mut Field<T>, v: Field<T>) -> Option<()> {
    if !matches!(slot, Field::Missing) {
        return None;
    }
    *slot = v;
    Some(())
}

/// The members of one flat object (the `{` already eaten), into `fields`. A `data` member
/// holding an object is read into `data` when given.
fn members<'a>(
    sc: &mut Scanner<'a>,
    fields: &mut Fields<'a>,
    mut data: Option<(&mut Option<Fields<'a>>, &mut Field<Cow<'a, str>>)>,
) -> Option<()> {
    sc.ws();
    if sc.s.get(sc.i) == Some(&b'}') {
        sc.i += 1;
        return Some(());
    }
    loop {
        let key = sc.string()?;
        sc.eat(b':')?;
        sc.ws();
        if key == "data" && sc.s.get(sc.i) == Some(&b'{') {
            let (slot, _) = data.as_mut()?;
            if slot.is_some() {
                return None;
            }
            sc.i += 1;
            let mut inner = Fields::default();
            members(sc, &mut inner, None)?;
            **slot = Some(inner);
        } else {
            let v = sc.scalar()?;
            match key {
                "e" => set(&mut fields.e, text(v))?,
                "s" => set(&mut fields.s, text(v))?,
                "p" => set(&mut fields.p, text(v))?,
                "q" => set(&mut fields.q, text(v))?,
                "a" => set(&mut fields.a, int(v))?,
                "t" => set(&mut fields.t, int(v))?,
                "f" => set(&mut fields.f, int(v))?,
                "l" => set(&mut fields.l, int(v))?,
                "T" => set(&mut fields.time, int(v))?,
                "m" => set(
                    &mut fields.m,
                    if let Value::Bool(b) = v { Field::Ok(b) } else { Field::Wrong },
                )?,
                "stream" => {
                    if let Some((_, stream)) = data.as_mut() {
                        set(stream, text(v))?;
                    }
                }
                // serde reads a top-level `data` that is not an object as an error.
                "data" => return None,
                _ => {}
            }
        }
        sc.ws();
        match *sc.s.get(sc.i)? {
            b',' => sc.i += 1,
            b'}' => {
                sc.i += 1;
                return Some(());
            }
            _ => return None,
        }
    }
}

/// The event fields of a frame, or `None` to let serde decide.
pub(crate) fn scan(frame: &[u8]) -> Option<Fields<'_>> {
    let mut sc = Scanner { s: frame, i: 0 };
    sc.eat(b'{')?;
    let mut top = Fields::default();
    let mut data = None;
    let mut stream = Field::Missing;
    members(&mut sc, &mut top, Some((&mut data, &mut stream)))?;
    sc.ws();
    if sc.i != frame.len() {
        return None;
    }
    match (stream, data) {
        (Field::Ok(_), Some(inner)) => Some(inner),
        (Field::Missing, None) => Some(top),
        _ => None, // unusual combinations: serde words the error
    }
}

#[cfg(test)]
mod tests {
    use super::super::ws::{parse_ws_message, parse_ws_serde};
    use proptest::prelude::*;

    const BASE: &str = r#"{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1675759520848,"s":"BTCUSDT","a":226532,"p":"1632.46000000","q":"0.34305000","f":228423,"l":228425,"T":1675759520847,"m":false,"M":true}}"#;

    #[test]
    fn the_usual_frames_take_the_fast_path() {
        let plain = r#"{"e":"trade","E":1,"s":"ETHUSDT","t":705291099,"p":"4149.74","q":"0.4387","b":7038593583,"a":7038593613,"T":1639351062243,"m":true,"M":true}"#;
        for frame in [BASE, plain, r#" { "result" : null , "id" : 1 } "#] {
            assert!(super::scan(frame.as_bytes()).is_some(), "{frame}");
            assert_eq!(parse_ws_message(frame.as_bytes()), parse_ws_serde(frame.as_bytes()));
        }
        let depth = r#"{"stream":"x@depth","data":{"e":"depthUpdate","b":[["1","2"]]}}"#;
        assert!(super::scan(depth.as_bytes()).is_none(), "arrays go to serde");
    }

    fn pieces() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("\"".into()),
            Just("\\".into()),
            Just(",".into()),
            Just("}".into()),
            Just("{".into()),
            Just("[1]".into()),
            Just("null".into()),
            Just("-0".into()),
            Just("01".into()),
            Just("1.5e3".into()),
            Just("99999999999999999999".into()),
            Just("\"a\":1".into()),
            Just("\"e\":\"aggTrade\"".into()),
            Just("\"data\":{}".into()),
            Just("\u{1}".into()),
            "[a-zA-Z0-9:.,\"{} -]{0,6}".prop_map(|s| s),
        ]
    }

    /// A frame of the usual shape whose numbers have any number of digits (a sign, leading
    /// zeros, fractions now and then) and whose strings any length and bytes.
    fn any_length_frame() -> impl Strategy<Value = String> {
        let number =
            ("-?", "[0-9]{1,20}", "(\\.[0-9]{0,3})?").prop_map(|(s, d, f)| format!("{s}{d}{f}"));
        let text = "[ -~\u{80}-\u{7ff}]{0,24}".prop_map(|t| t.replace(['"', '\\'], ""));
        (number.clone(), number.clone(), number, text.clone(), text).prop_map(|(a, f, t, p, sym)| {
            format!(
                r#"{{"stream":"x@aggTrade","data":{{"e":"aggTrade","E":{t},"s":"{sym}","a":{a},"p":"{p}","q":"0.5","f":{f},"l":{f},"T":{t},"m":true,"M":true}}}}"#
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        #[test]
        fn fast_and_serde_agree_on_numbers_and_strings_of_any_length(frame in any_length_frame()) {
            prop_assert_eq!(parse_ws_message(frame.as_bytes()), parse_ws_serde(frame.as_bytes()), "{}", frame);
        }

        #[test]
        fn fast_and_serde_agree_on_mangled_frames(at in 0usize..220, cut in 0usize..8, piece in pieces()) {
            let mut frame = BASE.to_string();
            let at = at.min(frame.len());
            let end = (at + cut).min(frame.len());
            if !frame.is_char_boundary(end) { return Ok(()); }
            frame.replace_range(at..end, &piece);
            prop_assert_eq!(parse_ws_message(frame.as_bytes()), parse_ws_serde(frame.as_bytes()), "{}", frame);
        }

        #[test]
        fn fast_and_serde_agree_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
            prop_assert_eq!(parse_ws_message(&bytes), parse_ws_serde(&bytes));
        }
    }
}
