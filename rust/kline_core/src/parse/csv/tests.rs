use super::*;

#[test]
fn spot_row() {
    let t = parse_row(
        b"202790190,7139.89000000,0.06702300,222825297,222825297,1577977823305,False,True",
    )
    .unwrap();
    assert_eq!(
        t,
        Trade {
            id: 202_790_190,
            price: 713_989_000_000,
            qty: 6_702_300,
            first_id: 222_825_297,
            last_id: 222_825_297,
            time: 1_577_977_823_305,
            buyer_is_maker: false,
        }
    );
}

#[test]
fn futures_row_and_header() {
    assert!(is_header(b"agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\r\n1,2"));
    assert!(is_header(b"\xEF\xBB\xBFagg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker,is_best_match"));
    // A corrupt first row is data (a bad row), whatever letter it starts with.
    for line in [&b"x1,1.0,1.0,1,1,5,true"[..], b"garbage", b"agg_trade_id,1.0,1.0,1,1,5", b""] {
        assert!(!is_header(line), "{}", String::from_utf8_lossy(line));
    }
    let t = parse_row(b"26129,0.01633102,4.70443515,27781,27781,1498793709153,true\r").unwrap();
    assert!(t.buyer_is_maker);
    assert_eq!(t.qty, 470_443_515);
}

#[test]
fn raw_trade_rows_spot_and_futures() {
    // Spot trades: id,price,qty,quoteQty,time,isBuyerMaker,isBestMatch (no header).
    let spot = b"3380000000,42000.01000000,0.00120000,50.40001200,1704153600123,True,True\n\
                 3380000001,42000.02000000,0.50000000,21000.01000000,1704153600456,False,True";
    let (mut trades, mut bad) = (Vec::new(), Vec::new());
    assert_eq!(parse_block(Layout::Trades, spot, &mut trades, &mut bad), 2);
    assert!(bad.is_empty(), "{bad:?}");
    let t = trades[0];
    assert_eq!((t.id, t.first_id, t.last_id), (3_380_000_000, 3_380_000_000, 3_380_000_000));
    assert_eq!(
        (t.price, t.qty, t.time, t.buyer_is_maker),
        (4_200_001_000_000, 120_000, 1_704_153_600_123, true)
    );
    assert!(!trades[1].buyer_is_maker);
    // Futures trades: a header, then id,price,qty,quote_qty,time,is_buyer_maker.
    let futures =
        b"id,price,qty,quote_qty,time,is_buyer_maker\n7,0.2468,3218,794.2024,1626992767899,true\n";
    assert_eq!(header(futures), Some(Layout::Trades));
    assert_eq!(header(b"agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"), Some(Layout::AggTrades));
    let body = &futures[futures.iter().position(|&c| c == b'\n').unwrap() + 1..];
    trades.clear();
    assert_eq!(parse_block(Layout::Trades, body, &mut trades, &mut bad), 1);
    assert_eq!((trades[0].id, trades[0].price, trades[0].qty), (7, 24_680_000, 321_800_000_000));
    // The careful path says what is wrong.
    for (row, why) in [
        (&b"1,2.0,3.0,6.0,5"[..], "5 columns"),
        (b"1,2.0,3.0,6.0,5,maybe", "is_buyer_maker is not a boolean"),
        (b"1,2.0,3.0,x,5,true", "quote_qty"),
        (b"x,2.0,3.0,6.0,5,true", "id is not an integer"),
    ] {
        let err = parse_trade_row(row).unwrap_err();
        assert!(err.contains(why), "{err}");
    }
    assert_eq!(Layout::of_file_name("BTCUSDT-trades-2024-01-02.zip"), Some(Layout::Trades));
    assert_eq!(Layout::of_file_name("BTCUSDT-aggTrades-2024-01-02.zip"), Some(Layout::AggTrades));
    assert_eq!(Layout::of_file_name("BTCUSDT-1m-2024-01-02.zip"), None);
}

#[test]
fn a_coin_m_trades_header_names_base_qty_and_only_a_trades_header_may() {
    let coin_m = b"id,price,qty,base_qty,time,is_buyer_maker\r\n1,2.0,3,1.5,5,true\n";
    assert_eq!(header(coin_m), Some(Layout::Trades));
    assert!(names_base_qty(coin_m));
    let usd_m = b"id,price,qty,quote_qty,time,is_buyer_maker\n1,2.0,3,6.0,5,true\n";
    assert_eq!(header(usd_m), Some(Layout::Trades));
    assert!(!names_base_qty(usd_m));
    // aggTrades headers have no such column; a data row is no header at all.
    assert_eq!(header(b"agg_trade_id,price,base_qty\n"), None);
    assert!(!names_base_qty(b"agg_trade_id,price,base_qty\n"));
    assert!(!names_base_qty(b"7,base_qty,3,1.5,5,true\n"));
    assert!(!names_base_qty(b""));
}

#[test]
fn bad_rows_say_why() {
    let cases: [(&[u8], &str); 7] = [
        (b"1,2,3", "3 columns"),
        (b"x,1.0,1.0,1,1,1,true", "agg_trade_id is not an integer"),
        (b"1,1.0.0,1.0,1,1,1,true", "price: malformed"),
        (b"1,1.0,1.000000001,1,1,1,true", "quantity: more than 8 decimals"),
        (b"1,1.0,1.0,1,1,1,maybe", "is_buyer_maker is not a boolean"),
        (b"1,1.0,1.0,1,1,1,true,x", "is_best_match"),
        (b"1,1.0,1.0,1,1,1,true,true,9", "more than 8 columns"),
    ];
    for (row, want) in cases {
        let err = parse_row(row).unwrap_err();
        assert!(err.contains(want), "{err} lacks {want}");
    }
}

#[test]
fn fast_path_agrees_with_the_careful_one() {
    let rows: [&[u8]; 10] = [
        b"1,1.0,1.0,0,9223372036854775807,1,true",
        b"1,1.0,1.0,0,1,99999999999999999999999,true",
        b"1,7139.89000000,0.06702300,2,3,1577977823305,False,True",
        b"1,7139.89,0.5,2,3,1577977823305,true",
        b"-1,0,0,-1,-1,1,False,True",
        b"1,92233720367.99999999,1,2,3,4,true",
        b"1,92233720368.54775807,1,2,3,4,true",
        b"1,1.000000000,1,2,3,4,true",
        b"1,1.00000001,1,2,3,1735689600000000,false\r",
        b"1,12345678.1234567x,1,2,3,4,true",
    ];
    for row in rows {
        let mut fast = Fast { s: row, i: 0 };
        let careful = parse_row(row).ok();
        // `None` falls back to parse_row.
        if let Some(t) = fast.row() {
            assert_eq!(Some(t), careful, "{}", String::from_utf8_lossy(row));
        }
        let (mut trades, mut bad) = (Vec::new(), Vec::new());
        parse_block(Layout::AggTrades, row, &mut trades, &mut bad);
        let usable = careful.and_then(|t| usable(t, || row).ok());
        assert_eq!(trades.first().copied(), usable, "{}", String::from_utf8_lossy(row));
    }
}

/// `n` random digits (a leading zero now and then).
fn digits(n: usize) -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::strategy::Strategy;
    proptest::collection::vec(proptest::sample::select(b"0123456789".to_vec()), n)
        .prop_map(|d| String::from_utf8(d).unwrap())
}

/// A row in the usual shape with numbers of any length (1 to 20 digits, 0 to 10 decimals),
/// followed by another line, so 8- and 16-byte reads see what comes after each field.
fn any_length_row() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::strategy::Strategy;
    let int = (1usize..=20).prop_flat_map(digits);
    let dec = ((1usize..=13).prop_flat_map(digits), (0usize..=10).prop_flat_map(digits))
        .prop_map(|(i, f)| if f.is_empty() { i } else { format!("{i}.{f}") });
    (int.clone(), dec.clone(), dec, int.clone(), int.clone(), int, proptest::bool::ANY).prop_map(
        |(a, p, q, f, l, t, m)| {
            format!("{a},{p},{q},{f},{l},{t},{m}\n1,1,1,1,1,1,true\n").into_bytes()
        },
    )
}

proptest::proptest! {
    #[test]
    fn fast_and_careful_parsers_agree_on_numbers_of_any_length(block in any_length_row()) {
        let (mut trades, mut bad) = (Vec::new(), Vec::new());
        parse_block(Layout::AggTrades, &block, &mut trades, &mut bad);
        let row = line_at(&block, 0);
        let careful = parse_row(row).and_then(|t| usable(t, || row));
        let first = if bad.first().is_some_and(|b| b.0 == 0) { None } else { trades.first().copied() };
        proptest::prop_assert_eq!(first, careful.clone().ok());
        proptest::prop_assert_eq!(bad.first().filter(|b| b.0 == 0).map(|b| b.1.clone()), careful.err());
    }

    #[test]
    fn fast_and_careful_parsers_agree_on_any_bytes(row in proptest::collection::vec(
        proptest::sample::select(b"0123456789.,-TrueFalsf\r".to_vec()), 0..80)) {
        let (mut trades, mut bad) = (Vec::new(), Vec::new());
        parse_block(Layout::AggTrades, &row, &mut trades, &mut bad);
        let careful = parse_row(&row).and_then(|t| usable(t, || line_at(&row, 0)));
        if !row.is_empty() && !row.contains(&b'\n') && row != b"\r" {
            proptest::prop_assert_eq!(trades.first().copied(), careful.clone().ok());
            proptest::prop_assert_eq!(bad.first().map(|b| b.1.clone()), careful.err());
        }
    }
}

#[test]
fn values_no_kline_can_use_are_bad_rows_but_placeholders_are_not() {
    let block = b"1,-1.5,1.0,1,1,5,true\n2,0,1.0,1,1,5,true\n3,1.0,1.0,5,4,5,true\n\
                  4,1.0,1.0,1,1,-5,true\n5,1.0,1.0,0,9223372036854775807,5,true\n\
                  6,0,0,-1,-1,5,true\n7,1.0,1.0,1,1,5,true\n";
    let (mut trades, mut bad) = (Vec::new(), Vec::new());
    assert_eq!(parse_block(Layout::AggTrades, block, &mut trades, &mut bad), 7);
    assert_eq!(trades.iter().map(|t| t.id).collect::<Vec<_>>(), [6, 7]);
    let reasons: Vec<_> = bad.iter().map(|(i, r)| (*i, r.split(':').next().unwrap())).collect();
    assert_eq!(
        reasons,
        [
            (0, "price is not positive"),
            (1, "price is not positive"),
            (2, "raw trade ids f..l are not a range"),
            (3, "time is negative"),
            (4, "raw trade ids f..l span more than 2^32 trades"),
        ]
    );
    assert!(bad[0].1.contains("\"1,-1.5,1.0,1,1,5,true\""), "{}", bad[0].1);
}

#[test]
fn a_long_bad_line_is_quoted_cut() {
    let pad = "x".repeat(1 << 20);
    let rows = [
        format!("1,1.0,1.0,1,1,5,true,true,{pad}"),
        format!("{pad},1.0,1.0,1,1,5,true"),
        format!("1,1.0,1.0,1,1,5,{pad}"),
        format!("1,1.0,1.0,1,1,5,true,{pad}"),
        format!("1,{pad},1.0,1,1,5,true"),
    ];
    for row in rows {
        let (mut trades, mut bad) = (Vec::new(), Vec::new());
        parse_block(Layout::AggTrades, row.as_bytes(), &mut trades, &mut bad);
        let reason = &bad[0].1;
        assert!(reason.len() < 200, "{} bytes: {:.200}", reason.len(), reason);
    }
}

#[test]
fn block_counts_lines_and_reports_bad_ones() {
    let block = b"1,1.0,1.0,1,1,5,true\n\nbad\n2,1.0,1.0,2,2,6,false\n";
    let (mut trades, mut bad) = (Vec::new(), Vec::new());
    assert_eq!(parse_block(Layout::AggTrades, block, &mut trades, &mut bad), 4);
    assert_eq!(trades.len(), 2);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, 2);
}

/// A row of the usual shape before `row`, so the indexed reader (which reads the 16 bytes
/// before a field) sees `row` as it sees every row but a block's first; a row after it, so its
/// reads past the field see more data.
fn framed(row: &[u8]) -> Vec<u8> {
    let mut block = b"12345678901234567,1.5,2.5,3,4,1704067200000,true\n".to_vec();
    block.extend_from_slice(row);
    block.extend_from_slice(b"\n9,1.5,2.5,3,4,1704067200000,true\n");
    block
}

/// The second line of a framed block, by the block reader and by the careful parser.
fn second_row_both_ways(block: &[u8]) -> (Result<Trade, String>, Result<Trade, String>) {
    let (mut trades, mut bad) = (Vec::new(), Vec::new());
    parse_block(Layout::AggTrades, block, &mut trades, &mut bad);
    let start = memchr(b'\n', block).unwrap() + 1;
    let rest = &block[start..];
    let raw = &rest[..memchr(b'\n', rest).unwrap()];
    let careful = parse_row(raw).and_then(|t| usable(t, || line_at(block, start)));
    let read = match bad.iter().find(|b| b.0 == 1) {
        Some((_, why)) => Err(why.clone()),
        None => Ok(trades[1]),
    };
    (read, careful)
}

/// The indexed reader on the row at `start` of `block`, given its separators.
fn indexed_row(block: &[u8], start: usize) -> Option<(Trade, usize)> {
    let seps: Vec<u32> = (start..block.len())
        .filter(|&i| block[i] == b',' || block[i] == b'\n')
        .map(|i| i as u32)
        .collect();
    indexed::agg_row(block, start, &seps)
}

#[test]
fn the_indexed_reader_takes_the_usual_rows_and_leaves_the_rest() {
    let usual: [&[u8]; 6] = [
        b"132638894,0.5500306,431,123881892,123881897,1704067200012,false",
        b"242153426,42001.78,0.02546,938322489,938322489,1704067200007,true",
        b"1,0.00000120,13216104,2,3,1735689600000000,False,True",
        b"1,92233720367.99999999,46116860414,2,3,4,True\r",
        b"0000000000000001,00001.10000000,0.0,1,1,1,false,false\r",
        b"9999999999999999,1,1.1,9999999999999999,9999999999999999,9999999999999999,true",
    ];
    for row in usual {
        let block = framed(row);
        let start = memchr(b'\n', &block).unwrap() + 1;
        let (t, used) = indexed_row(&block, start).expect("read");
        assert_eq!(Ok(t), parse_row(line_at(&block, start)), "{}", String::from_utf8_lossy(row));
        assert_eq!(used, if row.ends_with(b"True") || row.ends_with(b"false\r") { 8 } else { 7 });
    }
    let unusual: [&[u8]; 14] = [
        b"-1,0,0,-1,-1,1,False,True",
        b"1,92233720368,1,2,3,4,true",
        b"1,1.000000000,1,2,3,4,true",
        b"1,1.,1,2,3,4,true",
        b"1,.5,1,2,3,4,true",
        b"1,1.5,1,2,3,4,TRUE",
        b"12345678901234567,1.5,1,2,3,4,true",
        b"1,1.5,1,2,3,4,true\r,true",
        b"1,1.5,1,2,3,4,true,true,true",
        b"1,1.5,1,2,3,4",
        b"1,1.5,1,2,,4,true",
        b"1,1.5,1,2,3\n,4,true",
        b"1,1.5,1,2,3,4,true\r\r",
        b"1,1 .5,1,2,3,4,true",
    ];
    for row in unusual {
        let block = framed(row);
        let start = memchr(b'\n', &block).unwrap() + 1;
        assert_eq!(indexed_row(&block, start), None, "{}", String::from_utf8_lossy(row));
        let (read, careful) = second_row_both_ways(&block);
        assert_eq!(read, careful, "{}", String::from_utf8_lossy(row));
    }
}

/// [`any_length_row`]'s row alone.
fn any_length_line() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::strategy::Strategy;
    any_length_row().prop_map(|r| r[..memchr(b'\n', &r).unwrap()].to_vec())
}

proptest::proptest! {
    #[test]
    fn indexed_and_careful_readers_agree_on_numbers_of_any_length(row in any_length_row()) {
        // any_length_row's first line is the row (its second another row): frame the first.
        let row = &row[..memchr(b'\n', &row).unwrap()];
        let block = framed(row);
        let (read, careful) = second_row_both_ways(&block);
        proptest::prop_assert_eq!(read, careful);
        let start = memchr(b'\n', &block).unwrap() + 1;
        if let Some((t, _)) = indexed_row(&block, start) {
            proptest::prop_assert_eq!(Ok(t), parse_row(line_at(&block, start)));
        }
    }

    #[test]
    fn indexed_and_careful_readers_agree_on_any_bytes(row in proptest::collection::vec(
        proptest::sample::select(b"0123456789.,-TrueFalsf\r".to_vec()), 0..80)) {
        let block = framed(&row);
        let (read, careful) = second_row_both_ways(&block);
        if !row.is_empty() && row != b"\r" {
            proptest::prop_assert_eq!(read, careful);
        }
        let start = memchr(b'\n', &block).unwrap() + 1;
        if let Some((t, _)) = indexed_row(&block, start) {
            proptest::prop_assert_eq!(Ok(t), parse_row(line_at(&block, start)));
        }
    }

    /// Blocks of many rows, usual and not, cut anywhere: the same trades and bad rows as the
    /// careful parser line by line, whatever the windows and fall-backs.
    #[test]
    fn a_block_reads_as_its_lines_one_by_one(
        rows in proptest::collection::vec(
            proptest::prop_oneof![
                4 => any_length_line(),
                1 => proptest::collection::vec(
                    proptest::sample::select(b"0123456789.,-TrueFalsf\r".to_vec()), 0..80),
            ],
            0..300,
        ),
        cut in 0usize..64,
    ) {
        let mut block = Vec::new();
        for r in &rows {
            block.extend_from_slice(r);
            block.push(b'\n');
        }
        block.truncate(block.len().saturating_sub(cut % 2));
        let (mut trades, mut bad) = (Vec::new(), Vec::new());
        let lines = parse_block(Layout::AggTrades, &block, &mut trades, &mut bad);
        let (mut want_trades, mut want_bad) = (Vec::new(), Vec::new());
        let mut n = 0u64;
        for line in block.split_inclusive(|&c| c == b'\n') {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            if !(line.is_empty() || line == b"\r") {
                match parse_row(line).and_then(|t| usable(t, || line.strip_suffix(b"\r").unwrap_or(line))) {
                    Ok(t) => want_trades.push(t),
                    Err(why) => want_bad.push((n, why)),
                }
            }
            n += 1;
        }
        proptest::prop_assert_eq!(lines, n);
        proptest::prop_assert_eq!(trades, want_trades);
        proptest::prop_assert_eq!(bad, want_bad);
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
proptest::proptest! {
    /// The SSE2 readers against the word-at-a-time ones, on any field of any bytes that look
    /// like numbers (digits, points, separators, a stray letter).
    #[test]
    fn sse2_and_word_readers_agree_on_any_field(
        block in proptest::collection::vec(
            proptest::sample::select(b"0123456789012345678901234567890123456789..,x\n".to_vec()),
            0..80,
        ),
        start in 0usize..80,
        len in 0usize..24,
    ) {
        let end = (start + len).min(block.len());
        let start = start.min(end);
        proptest::prop_assert_eq!(
            sse2::uint_at(&block, start, end),
            indexed::uint_at(&block, start, end)
        );
        let wide = || indexed::decimal_at(&block, start, end);
        let (fast, word) = (sse2::decimal_at(&block, start, end, wide), wide());
        // Near the end of the block either may say None (each reads past the field).
        if start >= 16 && start + 16 <= block.len() && end + 9 <= block.len() {
            proptest::prop_assert_eq!(fast, word);
        }
        for v in [fast, word].into_iter().flatten() {
            proptest::prop_assert_eq!(Ok(v), crate::decimal::parse_fixed8(&block[start..end]));
        }
    }
}
