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
