use super::*;
use std::io::Write;

/// A fresh folder for one test (also used by `output`'s tests).
pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kline_core-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn opts(out: &Path) -> ReplayOptions {
    ReplayOptions::new(vec!["1m".parse().unwrap()], out)
}

#[test]
fn a_corrupt_zip_is_an_error_naming_the_file() {
    let dir = scratch("zip");
    let zip = dir.join("BTCUSDT-aggTrades-2020-01-02.zip");
    std::fs::write(&zip, b"PK\x03\x04 this is not a zip").unwrap();
    let err = replay(&[zip], &opts(&dir.join("out"))).unwrap_err();
    assert!(matches!(err, ReplayError::Io { ref path, .. } if path.ends_with(".zip")), "{err}");
}

#[test]
fn lines_split_across_blocks_are_read_whole() {
    let dir = scratch("blocks");
    let path = dir.join("ETHUSDT-aggTrades-2020-01-02.csv");
    let mut f = File::create(&path).unwrap();
    let n: i64 = 40_000; // ≈ 3 MB: several 1 MiB blocks
    for i in 0..n {
        let t = 1_577_923_200_000 + i * 2_000;
        writeln!(f, "{i},{}.12345678,0.00100000,{i},{i},{t},False,True", 100 + i % 7).unwrap();
    }
    drop(f);
    let out = dir.join("out");
    let summary = replay(&[path], &ReplayOptions { threads: 3, ..opts(&out) }).unwrap();
    assert_eq!((summary.rows, summary.counts.applied, summary.bad_rows), (n as u64, n as u64, 0));
    let text = std::fs::read_to_string(out.join("ETHUSDT-1m.csv")).unwrap();
    let trades: u64 =
        text.lines().map(|l| l.split(',').nth(8).unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(trades, n as u64);
}

/// One symbol's day of trades every 2 s, with `edit` applied to the rows.
fn day_file(dir: &Path, edit: impl Fn(i64, i64) -> i64) -> PathBuf {
    let path = dir.join("BTCUSDT-aggTrades-2020-01-02.csv");
    let mut f = File::create(&path).unwrap();
    for i in 0..20_000i64 {
        let t = edit(i, 1_577_923_200_000 + i * 2_000);
        writeln!(f, "{i},100.5,0.001,{i},{i},{t},False,True").unwrap();
    }
    path
}

fn lines_of(out: &Path) -> usize {
    std::fs::read_to_string(out.join("BTCUSDT-1m.csv")).unwrap().lines().count()
}

#[test]
fn one_row_in_the_other_unit_or_a_flipped_digit_is_refused_not_followed() {
    type Edit = fn(i64, i64) -> i64;
    let dir = scratch("implausible");
    let clean = replay(&[day_file(&dir, |_, t| t)], &opts(&dir.join("clean"))).unwrap();
    let cases: [(&str, Edit); 3] = [
        ("micros", |i, t| if i == 7_000 { t * 1_000 } else { t }),
        ("first-micros", |i, t| if i == 0 { t * 1_000 } else { t }),
        ("flipped", |i, t| if i == 9_000 { t + 9_000_000_000_000 } else { t }),
    ];
    for (name, edit) in cases {
        let path = day_file(&dir, edit);
        let err = replay(std::slice::from_ref(&path), &opts(&dir.join(name))).unwrap_err();
        assert!(matches!(err, ReplayError::Implausible { .. }), "{name}: {err}");
        assert!(err.to_string().contains("--skip-bad"), "{err}");
        let out = dir.join(format!("{name}-skip"));
        let s = replay(&[path], &ReplayOptions { skip_bad: true, ..opts(&out) }).unwrap();
        assert_eq!(s.counts.implausible(), 1, "{name}");
        assert_eq!(s.counts.applied, clean.counts.applied - 1, "{name}: the rest applied");
        assert_eq!(s.counts.late, 0, "{name}: nothing poisoned");
        assert_eq!(lines_of(&out), lines_of(&dir.join("clean")), "{name}");
        assert_eq!(s.warnings.len(), 1, "{name}: {:?}", s.warnings);
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn a_run_too_long_to_write_is_its_own_error_and_leaves_no_output() {
    let dir = scratch("too-long");
    let path = dir.join("BTCUSDT-aggTrades-2020-01-02.csv");
    let (t0, later) = (1_577_923_200_000i64, 1_577_923_200_000 + 400 * 86_400_000i64);
    let text = format!("1,100.5,1,1,1,{t0},False,True\n2,100.5,1,2,2,{later},False,True\n");
    std::fs::write(&path, text).unwrap();
    let out = dir.join("out");
    let one_s = ReplayOptions::new(vec!["1s".parse().unwrap()], &out);
    let err = replay(&[path], &ReplayOptions { max_jump_ms: None, ..one_s }).unwrap_err();
    assert!(
        matches!(err, ReplayError::FlatRunTooLong { ref symbol, ref source }
            if symbol == "BTCUSDT" && source.interval == "1s"),
        "{err}"
    );
    assert!(err.to_string().starts_with("BTCUSDT 1s: a quiet stretch"), "{err}");
    assert_eq!(names_in(&out), Vec::<String>::new());
}

#[test]
fn a_failed_replay_keeps_the_previous_output_and_leaves_no_temporary() {
    let dir = scratch("keep");
    let out = dir.join("out");
    replay(&[day_file(&dir, |_, t| t)], &opts(&out)).unwrap();
    let good = std::fs::read(out.join("BTCUSDT-1m.csv")).unwrap();
    // The next day fails after the first has begun writing.
    std::fs::write(dir.join("BTCUSDT-aggTrades-2020-01-03.csv"), "garbage\n").unwrap();
    let err = replay(std::slice::from_ref(&dir), &opts(&out)).unwrap_err();
    assert!(matches!(err, ReplayError::BadRow(ref b) if b.line == 1), "{err}");
    assert_eq!(names_in(&out), ["BTCUSDT-1m.csv"]);
    assert_eq!(std::fs::read(out.join("BTCUSDT-1m.csv")).unwrap(), good);
}

#[test]
fn a_raw_trade_span_past_2_32_is_a_bad_row_not_a_wrapped_count() {
    let dir = scratch("span");
    let path = day_file(&dir, |_, t| t);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("20000,100.5,0.001,0,{},1577963200000,False,True\n", i64::MAX));
    std::fs::write(&path, text).unwrap();
    let err = replay(std::slice::from_ref(&path), &opts(&dir.join("out"))).unwrap_err();
    let ReplayError::BadRow(bad) = err else { panic!("{err}") };
    assert_eq!(bad.line, 20_001);
    assert!(bad.reason.contains("more than 2^32"), "{}", bad.reason);
    let out = dir.join("skip");
    let s = replay(&[path], &ReplayOptions { skip_bad: true, ..opts(&out) }).unwrap();
    assert_eq!((s.bad_rows, s.counts.applied, s.counts.invalid), (1, 20_000, 0));
    let text = std::fs::read_to_string(out.join("BTCUSDT-1m.csv")).unwrap();
    let trades: u64 =
        text.lines().map(|l| l.split(',').nth(8).unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(trades, 20_000);
}

#[test]
fn a_halt_longer_than_the_jump_bound_is_followed() {
    let dir = scratch("halt");
    // From row 10 000 on, everything is 10 days later: a real halt, confirmed by the
    // trades after it.
    let path = day_file(&dir, |i, t| if i >= 10_000 { t + 10 * 86_400_000 } else { t });
    let s = replay(&[path], &opts(&dir.join("out"))).unwrap();
    assert_eq!((s.counts.applied, s.counts.implausible()), (20_000, 0));
}

#[test]
fn a_symbol_that_is_a_path_is_refused() {
    let dir = scratch("symbol-path");
    let path = day_file(&dir, |_, t| t);
    for bad in ["../../X", "/tmp/X", "A/B", ""] {
        let o = ReplayOptions { symbol: Some(bad.into()), ..opts(&dir.join("out")) };
        let err = replay(std::slice::from_ref(&path), &o).unwrap_err();
        assert!(matches!(err, ReplayError::Symbol(_)), "{bad}: {err}");
    }
    assert!(!dir.join("X-1m.csv").exists() && !dir.join("out").exists());
    let o = ReplayOptions { symbol: Some("btcusdt".into()), ..opts(&dir.join("out")) };
    replay(&[path], &o).unwrap();
    assert!(dir.join("out").join("BTCUSDT-1m.csv").exists());
}

#[test]
fn a_corrupt_aggtrade_id_is_refused_not_a_reason_to_drop_the_rest() {
    let dir = scratch("id");
    let path = dir.join("BTCUSDT-aggTrades-2020-01-02.csv");
    let mut f = File::create(&path).unwrap();
    for i in 0..5_000i64 {
        let a = if i == 2_000 { 9_000_000_000_000 + i } else { i };
        let t = 1_577_923_200_000 + i * 2_000;
        writeln!(f, "{a},100.5,0.001,{i},{i},{t},False,True").unwrap();
    }
    drop(f);
    let o = ReplayOptions { skip_bad: true, ..opts(&dir.join("out")) };
    let s = replay(&[path], &o).unwrap();
    assert_eq!((s.counts.applied, s.counts.implausible_id, s.counts.duplicates), (4_999, 1, 0));
}

/// Four symbols of like size, each a day of trades every 3 s; `bad(symbol, row)` rows are
/// unreadable.
fn four_symbols(dir: &Path, bad: impl Fn(usize, i64) -> bool) -> Vec<PathBuf> {
    ["ADAUSDT", "BTCUSDT", "ETHUSDT", "XRPUSDT"]
        .iter()
        .enumerate()
        .map(|(s, symbol)| {
            let path = dir.join(format!("{symbol}-aggTrades-2020-01-02.csv"));
            let mut f = File::create(&path).unwrap();
            for i in 0..28_800i64 {
                let t = 1_577_923_200_000 + i * 3_000;
                let p = 100 + (i * 7 + s as i64) % 13;
                if bad(s, i) {
                    writeln!(f, "{i},{p}.5,0.0x1,{i},{i},{t},False,True").unwrap();
                } else {
                    writeln!(f, "{i},{p}.5,0.001,{i},{i},{t},{},True", i % 3 == 0).unwrap();
                }
            }
            path
        })
        .collect()
}

fn replayed(
    dir: &Path,
    out: &str,
    threads: usize,
    skip_bad: bool,
) -> Result<ReplaySummary, ReplayError> {
    let intervals = ["1m", "5m", "1h"].iter().map(|i| i.parse().unwrap()).collect();
    let opts = ReplayOptions { threads, skip_bad, ..ReplayOptions::new(intervals, dir.join(out)) };
    replay(&[dir.to_path_buf()], &opts)
}

#[test]
fn symbols_replayed_side_by_side_give_what_one_thread_gives() {
    let dir = scratch("side-by-side");
    four_symbols(&dir, |s, i| s >= 1 && i % 5_000 == 17);
    assert!(
        run::symbols_side_by_side(&plan(std::slice::from_ref(&dir), None).unwrap(), 2).is_some()
    );
    let apart = replayed(&dir, "two", 2, true).unwrap();
    let alone = replayed(&dir, "one", 1, true).unwrap();
    assert_eq!((apart.files, apart.rows, apart.bad_rows), (4, 4 * 28_800, 3 * 6));
    assert_eq!((apart.counts, apart.klines_written), (alone.counts, alone.klines_written));
    let lines =
        |s: &ReplaySummary| s.bad_examples.iter().map(|b| b.to_string()).collect::<Vec<_>>();
    assert_eq!(lines(&apart), lines(&alone), "bad rows in input order");
    assert!(lines(&apart)[0].contains("BTCUSDT") && lines(&apart)[17].contains("XRPUSDT"));
    assert_eq!(apart.partial, alone.partial);
    let names = |s: &ReplaySummary| {
        s.outputs.iter().map(|p| p.file_name().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(names(&apart), names(&alone), "outputs in input order");
    for name in names(&apart) {
        let read = |out: &str| std::fs::read(dir.join(out).join(&name)).unwrap();
        assert_eq!(read("two"), read("one"), "{name:?}");
    }
}

#[test]
fn of_symbols_replayed_side_by_side_the_first_failing_one_is_reported_and_nothing_written() {
    let dir = scratch("side-by-side-fails");
    // ETHUSDT fails early in its file, BTCUSDT (before it in input order) late in its own.
    four_symbols(&dir, |s, i| (s == 1 && i == 28_000) || (s == 2 && i == 3));
    let err = replayed(&dir, "out", 2, false).unwrap_err();
    assert!(err.to_string().contains("BTCUSDT-aggTrades-2020-01-02.csv:28001"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.join("out")).unwrap().collect();
    assert!(left.is_empty(), "no output, final or partial: {left:?}");
}

#[test]
fn header_puts_binances_column_names_above_the_same_lines() {
    let dir = scratch("header");
    let day = day_file(&dir, |_, t| t);
    let plain = dir.join("plain");
    let with = dir.join("with");
    replay(std::slice::from_ref(&day), &opts(&plain)).unwrap();
    let s = replay(&[day], &ReplayOptions { header: true, ..opts(&with) }).unwrap();
    let plain = std::fs::read_to_string(plain.join("BTCUSDT-1m.csv")).unwrap();
    let with = std::fs::read_to_string(with.join("BTCUSDT-1m.csv")).unwrap();
    assert_eq!(with, format!("{KLINE_CSV_HEADER}{plain}"));
    assert!(with.starts_with("open_time,open,high,low,close,volume,close_time,quote_volume,"));
    assert_eq!(
        KLINE_CSV_HEADER.split(',').count(),
        plain.lines().next().unwrap().split(',').count()
    );
    assert_eq!(s.klines_written as usize, plain.lines().count(), "the header is not a kline");
}

#[test]
fn symbols_go_side_by_side_only_when_several_and_none_holds_more_than_half_the_bytes() {
    let dir = scratch("side-by-side-rule");
    let file = |symbol: &str, day: u32, bytes: usize| {
        let path = dir.join(format!("{symbol}-aggTrades-2020-01-{day:02}.csv"));
        std::fs::write(&path, vec![b'\n'; bytes]).unwrap();
        (symbol.to_string(), path)
    };
    // ADAUSDT in two files (60 + 40 bytes), BTCUSDT in one of 100: each exactly half.
    let halves = vec![file("ADAUSDT", 1, 60), file("ADAUSDT", 2, 40), file("BTCUSDT", 1, 100)];
    assert_eq!(run::symbols_side_by_side(&halves, 2), Some(vec![(0..2, 100), (2..3, 100)]));
    assert_eq!(run::symbols_side_by_side(&halves, 1), None, "one thread: the pipeline");
    let lopsided = vec![file("ETHUSDT", 1, 99), file("XRPUSDT", 1, 101)];
    assert_eq!(run::symbols_side_by_side(&lopsided, 8), None, "XRPUSDT: 101 of 200 bytes");
    assert_eq!(run::symbols_side_by_side(&halves[..2], 8), None, "one symbol");
}

#[test]
fn a_trades_file_is_read_as_trades_by_its_name_when_it_has_no_header() {
    let dir = scratch("raw-trades");
    let path = dir.join("BTCUSDT-trades-2020-01-02.csv");
    // Spot trades dumps have no header: id, price, qty, quote qty, time, buyer is maker, best
    // match (7 columns; as aggTrades these rows would be bad).
    let rows = "10,100.5,0.2,20.1,1577923200000,True,True\n\
                11,101.0,0.1,10.1,1577923230000,False,True\n";
    std::fs::write(&path, rows).unwrap();
    let out = dir.join("out");
    let s = replay(&[path], &opts(&out)).unwrap();
    assert_eq!((s.counts.applied, s.bad_rows), (2, 0));
    // Open 100.5, high and close 101, volume 0.3, quote 20.1 + 10.1, 2 trades, the second a
    // taker buy (0.1, 10.1).
    assert_eq!(
        std::fs::read_to_string(out.join("BTCUSDT-1m.csv")).unwrap(),
        "1577923200000,100.50000000,101.00000000,100.50000000,101.00000000,0.30000000,\
         1577923259999,30.20000000,2,0.10000000,10.10000000,0\n"
    );
}
