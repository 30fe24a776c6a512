use super::*;
use crate::interval::{Interval, TimeUnit, MINUTE_MS};
use crate::rollup::rollup;
use proptest::prelude::*;

const T0: i64 = 1_577_836_800_000; // 2020-01-01 00:00 UTC

fn grids(names: &[&str], unit: TimeUnit) -> Vec<Grid> {
    names.iter().map(|n| Grid::utc(n.parse::<Interval>().unwrap(), unit)).collect()
}

fn trade(id: i64, time: i64, price: i64, qty: i64) -> Trade {
    Trade {
        id,
        price,
        qty,
        first_id: id * 2,
        last_id: id * 2 + 1,
        time,
        buyer_is_maker: id % 3 == 0,
    }
}

#[test]
fn a_trade_exactly_on_the_boundary_opens_the_next_minute() {
    let g = grids(&["1m"], TimeUnit::Millis);
    let trades = [trade(1, T0 + MINUTE_MS - 1, 100, 1), trade(2, T0 + MINUTE_MS, 200, 1)];
    let (k, _) = aggregate(&g, &trades, QuoteRule::PerTrade).unwrap();
    assert_eq!(k[0].len(), 2);
    assert_eq!((k[0][0].close, k[0][1].open, k[0][1].open_time), (100, 200, T0 + MINUTE_MS));
}

#[test]
fn same_millisecond_trades_across_a_boundary_keep_id_order() {
    let g = grids(&["1m"], TimeUnit::Millis);
    let b = T0 + MINUTE_MS;
    let trades =
        [trade(1, b - 1, 10, 1), trade(2, b, 20, 1), trade(3, b, 30, 1), trade(4, b, 25, 1)];
    let (k, _) = aggregate(&g, &trades, QuoteRule::PerTrade).unwrap();
    assert_eq!((k[0][1].open, k[0][1].high, k[0][1].low, k[0][1].close), (20, 30, 20, 25));
    assert_eq!(k[0][1].trades, 6);
    assert_eq!((k[0][1].first_trade_id, k[0][1].last_trade_id), (4, 9));
}

#[test]
fn empty_periods_are_flat_at_the_previous_close_in_one_run() {
    struct Runs(Vec<FlatRun>);
    impl KlineSink for Runs {
        fn kline(&mut self, _: usize, _: &Kline) {}
        fn flat_run(&mut self, _: usize, run: &FlatRun) {
            self.0.push(*run);
        }
    }
    let g = grids(&["1m"], TimeUnit::Millis);
    let mut agg = Aggregator::new(g.clone());
    let mut runs = Runs(Vec::new());
    let days = 400 * 24 * 60 * MINUTE_MS;
    agg.push(&trade(1, T0 + 5, 100, 1), &mut runs).unwrap();
    agg.push(&trade(2, T0 + days, 90, 1), &mut runs).unwrap();
    assert_eq!(runs.0, vec![FlatRun { start: T0 + MINUTE_MS, end: T0 + days, price: 100 }]);
    // The next minute straight after: no silence, no run (not even an empty one).
    agg.push(&trade(3, T0 + days + MINUTE_MS, 95, 1), &mut runs).unwrap();
    assert_eq!(runs.0.len(), 1);

    let (k, _) = aggregate(
        &g,
        &[trade(1, T0 + 5, 100, 1), trade(2, T0 + 3 * MINUTE_MS, 90, 1)],
        QuoteRule::PerTrade,
    )
    .unwrap();
    assert_eq!(k[0].len(), 4);
    assert_eq!(k[0][1], Kline::flat(T0 + MINUTE_MS, T0 + 2 * MINUTE_MS - 1, 100));
    assert_eq!(k[0][2].first_trade_id, -1);
}

#[test]
fn an_edge_period_is_partial_only_where_the_input_does_not_cover_it() {
    let g = grids(&["1m"], TimeUnit::Millis)[0];
    let day = (T0, T0 + 1440 * MINUTE_MS);
    // A whole day covered: its first and last minutes are whole.
    assert!(partial_edges(&g, T0, T0 + 1439 * MINUTE_MS, day).is_empty());
    // Input from 00:00:30 to 00:09:59.999: both edge minutes are cut.
    let cut = (T0 + 30_000, T0 + 10 * MINUTE_MS - 1);
    assert_eq!(partial_edges(&g, T0, T0 + 9 * MINUTE_MS, cut), [T0, T0 + 9 * MINUTE_MS]);
    // One period, cut at both ends, is named once.
    assert_eq!(partial_edges(&g, T0, T0, (T0 + 1, T0 + 2)), [T0]);
    // Ends exactly at the last period's end: only the start is cut.
    let end = (T0 + 1, T0 + 10 * MINUTE_MS);
    assert_eq!(partial_edges(&g, T0, T0 + 9 * MINUTE_MS, end), [T0]);
}

#[test]
fn a_single_period_reaching_past_the_input_is_partial_and_one_within_it_is_not() {
    let day = grids(&["1d"], TimeUnit::Millis)[0];
    const HOUR: i64 = 60 * MINUTE_MS;
    // One hour of input inside a day: the day is partial; the whole day covered: it is not.
    assert_eq!(partial_edges(&day, T0, T0, (T0, T0 + HOUR)), [T0]);
    assert!(partial_edges(&day, T0, T0, (T0, T0 + 24 * HOUR)).is_empty());
}

#[test]
fn partial_periods_and_the_span_come_from_what_was_aggregated() {
    let g = grids(&["1m", "1h"], TimeUnit::Millis);
    let trades = [trade(1, T0 + 30_000, 100, 1), trade(2, T0 + 150_000, 101, 1)];
    let mut agg = Aggregator::new(g.clone());
    let mut out = Collect::new(&g);
    for t in &trades {
        agg.push(t, &mut out).unwrap();
    }
    assert_eq!(agg.span(), Some((T0 + 30_000, T0 + 150_000)));
    agg.finish(&mut out);
    let covered = (T0 + 30_000, T0 + 150_001);
    let want: Vec<Vec<i64>> = vec![vec![T0, T0 + 2 * MINUTE_MS], vec![T0]];
    assert_eq!(partial_periods(&g, &out.klines, covered), want);
    let hour = (T0, T0 + 60 * MINUTE_MS);
    assert_eq!(partial_periods(&g, &out.klines, hour), vec![Vec::<i64>::new(), vec![]]);
    assert_eq!(Aggregator::new(g.clone()).span(), None);
}

#[test]
fn duplicates_placeholders_invalid_and_late_are_counted_not_applied() {
    let g = grids(&["1m", "5m"], TimeUnit::Millis);
    let placeholder = Trade {
        id: 4,
        price: 0,
        qty: 0,
        first_id: -1,
        last_id: -1,
        time: T0,
        buyer_is_maker: false,
    };
    let trades = [
        trade(1, T0 + 10, 100, 1),
        trade(2, T0 + MINUTE_MS, 101, 1),
        trade(2, T0 + MINUTE_MS, 101, 1),
        trade(1, T0 + 10, 100, 1),
        trade(3, T0 + 20, 100, 1), // late: minute 0 has closed
        placeholder,
        Trade { price: -5, ..trade(5, T0 + MINUTE_MS, 1, 1) },
        trade(6, T0 + MINUTE_MS + 1, 102, 1),
    ];
    let (k, counts) = aggregate(&g, &trades, QuoteRule::PerTrade).unwrap();
    assert_eq!(
        counts,
        Counts {
            applied: 3,
            duplicates: 2,
            placeholders: 1,
            invalid: 1,
            late: 1,
            // Two raw trades each, p·q at 1e-14: each may differ from Binance's.
            inexact: 3,
            ..Counts::default()
        }
    );
    assert_eq!(k[0][1].close, 102);
    assert_eq!(k[1][0].trades, 6);
}

#[test]
fn microsecond_input_keeps_microseconds() {
    let g = grids(&["1m"], TimeUnit::Micros);
    let (k, _) = aggregate(
        &g,
        &[trade(1, T0 * 1000 + 59_999_999, 7, 1), trade(2, T0 * 1000 + 60_000_000, 8, 1)],
        QuoteRule::PerTrade,
    )
    .unwrap();
    assert_eq!(k[0][0].close_time, T0 * 1000 + 59_999_999);
    assert_eq!(k[0][1].open_time, T0 * 1000 + 60_000_000);
}

#[test]
fn tiny_prices_and_volumes_past_1e13_stay_exact() {
    let g = grids(&["1d"], TimeUnit::Millis);
    let qty = 90_000_000_000 * crate::decimal::SCALE; // 9e10 coins per trade
    let trades: Vec<Trade> = (1..=1000).map(|i| trade(i, T0 + i, 1, qty)).collect();
    let (k, _) = aggregate(&g, &trades, QuoteRule::PerTrade).unwrap();
    let k = k[0][0];
    assert_eq!(crate::decimal::format_fixed8(k.volume), "90000000000000.00000000");
    assert_eq!(k.quote_volume, 1000 * i128::from(qty));
    assert_eq!(
        crate::decimal::format_fixed8(crate::decimal::quote_to_fixed8(k.quote_volume)),
        "900000.00000000"
    );
}

#[test]
fn counts_add_field_by_field() {
    let one = Counts {
        applied: 1,
        duplicates: 2,
        placeholders: 3,
        invalid: 4,
        late: 5,
        implausible_unit: 6,
        implausible_jump: 7,
        implausible_id: 8,
        inexact: 9,
    };
    let ten = Counts {
        applied: 10,
        duplicates: 20,
        placeholders: 30,
        invalid: 40,
        late: 50,
        implausible_unit: 60,
        implausible_jump: 70,
        implausible_id: 80,
        inexact: 90,
    };
    let mut sum = one;
    sum.add(&ten);
    assert_eq!(
        sum,
        Counts {
            applied: 11,
            duplicates: 22,
            placeholders: 33,
            invalid: 44,
            late: 55,
            implausible_unit: 66,
            implausible_jump: 77,
            implausible_id: 88,
            inexact: 99,
        }
    );
    assert_eq!(sum.implausible(), 66 + 77 + 88);
}

#[test]
fn the_checkpoint_and_the_open_klines_follow_what_was_applied() {
    let g = grids(&["1m", "5m"], TimeUnit::Millis);
    let mut agg = Aggregator::new(g.clone());
    let mut out = Collect::new(&g);
    assert_eq!((agg.last_id(), agg.open_klines().len()), (None, 0));
    assert_eq!(agg.grids(), &g[..]);
    agg.push(&trade(5, T0 + 10, 100, 1), &mut out).unwrap();
    agg.push(&trade(6, T0 + MINUTE_MS, 101, 1), &mut out).unwrap();
    assert!(agg.push(&trade(4, T0 + MINUTE_MS, 102, 1), &mut out).is_err()); // duplicate
    assert!(agg.push(&trade(7, -1, 102, 1), &mut out).is_err()); // invalid time
    assert_eq!(agg.last_id(), Some(6));
    let open: Vec<(usize, i64, i64)> =
        agg.open_klines().iter().map(|(i, k)| (*i, k.open_time, k.close)).collect();
    assert_eq!(open, vec![(0, T0 + MINUTE_MS, 101), (1, T0, 101)]);
    agg.finish(&mut out);
    assert!(agg.open_klines().is_empty());
    assert_eq!(agg.last_id(), Some(6));
}

/// An open kline as (interval, open time, [open, high, low, close], volume, raw trades,
/// [first id, last id]).
type OpenKline = (usize, i64, [i64; 4], i128, u64, [i64; 2]);

#[test]
fn a_rolled_up_open_kline_holds_the_closed_finer_ones_of_its_period_and_the_open_one() {
    let g = grids(&["1m", "5m", "1h"], TimeUnit::Millis);
    let mut agg = Aggregator::new(g.clone());
    let mut out = Collect::new(&g);
    let open = |agg: &Aggregator| -> Vec<OpenKline> {
        let prices = |k: &Kline| [k.open, k.high, k.low, k.close];
        let ids = |k: &Kline| [k.first_trade_id, k.last_trade_id];
        let k = agg.open_klines();
        k.iter().map(|(i, k)| (*i, k.open_time, prices(k), k.volume, k.trades, ids(k))).collect()
    };
    // trade(id, …) holds raw trades 2·id and 2·id + 1.
    agg.push(&trade(1, T0 + 10, 100, 1), &mut out).unwrap();
    agg.push(&trade(2, T0 + 4 * MINUTE_MS + 30_000, 110, 2), &mut out).unwrap();
    // The 00:00 minute closed into 5m and 1h; the 00:04 minute is open in all three.
    let m4 = T0 + 4 * MINUTE_MS;
    assert_eq!(
        open(&agg),
        vec![
            (0, m4, [110, 110, 110, 110], 2, 2, [4, 5]),
            (1, T0, [100, 110, 100, 110], 3, 4, [2, 5]),
            (2, T0, [100, 110, 100, 110], 3, 4, [2, 5]),
        ]
    );
    // A trade in the next 5 minutes: the 00:00 5m kline has only closed finer ones (it is
    // handed out when the 00:05 minute closes); the open 5m kline is the 00:05 one.
    agg.push(&trade(3, T0 + 5 * MINUTE_MS + 10_000, 90, 3), &mut out).unwrap();
    let m5 = T0 + 5 * MINUTE_MS;
    assert_eq!(
        open(&agg),
        vec![
            (0, m5, [90, 90, 90, 90], 3, 2, [6, 7]),
            (1, m5, [90, 90, 90, 90], 3, 2, [6, 7]),
            (2, T0, [100, 110, 90, 90], 6, 6, [2, 7]),
        ]
    );
}

#[test]
fn a_held_jump_is_confirmed_only_by_a_later_id_at_or_after_its_time_within_the_bound() {
    const DAY: i64 = 86_400_000;
    let g = grids(&["1d"], TimeUnit::Millis);
    let limits = TimeLimits::from_ms(TimeUnit::Millis, None, Some(DAY));
    let held = trade(2, T0 + 10 * DAY, 100, 1);
    // (the trade after the held one; trades applied, jumps refused, after `finish`)
    let cases = [
        (trade(3, held.time, 100, 1), (3, 0)), // a halt: the next trade follows it
        (trade(2, held.time + 5, 100, 1), (1, 2)), // the same id again
        (trade(3, held.time - DAY, 100, 1), (1, 2)), // a later id, earlier than it
        (trade(3, held.time + 2 * DAY, 100, 1), (1, 2)), // too far after it too
    ];
    for (next, (applied, jumps)) in cases {
        let mut agg = Aggregator::with_limits(g.clone(), limits);
        let mut out = Collect::new(&g);
        for t in [trade(1, T0, 100, 1), held, next] {
            let _ = agg.push(&t, &mut out);
        }
        agg.finish(&mut out);
        let c = agg.counts;
        assert_eq!((c.applied, c.implausible_jump), (applied, jumps), "{next:?}");
        let raw: u64 = out.klines[0].iter().map(|k| k.trades).sum();
        assert_eq!(raw, 2 * applied, "{next:?}");
    }
}

#[test]
fn a_month_run_clipped_at_a_month_start_begins_there() {
    let m = Grid::utc(Interval::Month, TimeUnit::Millis);
    let year = FlatRun { start: T0, end: m.advance(T0, 12).unwrap(), price: 1 };
    let (mar, may) = (m.advance(T0, 2).unwrap(), m.advance(T0, 4).unwrap());
    let got = flat_periods(&m, &year, mar, may, None).unwrap();
    assert_eq!(
        got,
        vec![(mar, m.advance(T0, 3).unwrap() - 1), (m.advance(T0, 3).unwrap(), may - 1)]
    );
    assert_eq!(clip_run(&m, &year, may, may), None);
}

#[test]
fn a_run_of_exactly_the_bound_is_expanded() {
    let g = Grid::utc(Interval::Fixed { ms: 1 }, TimeUnit::Millis);
    let run = FlatRun { start: T0, end: T0 + MAX_FLAT_PERIODS, price: 7 };
    let mut n = 0i64;
    assert_eq!(expand_flat_run(&g, &run, |_| n += 1), Ok(()));
    assert_eq!(n, MAX_FLAT_PERIODS);
    let longer = FlatRun { end: run.end + 1, ..run };
    assert!(expand_flat_run(&g, &longer, |_| n += 1).is_err());
    assert_eq!(n, MAX_FLAT_PERIODS, "a refused run calls f for none");
}

fn arb_trades() -> impl Strategy<Value = Vec<Trade>> {
    arb_trades_spread(1)
}

/// Trades whose gaps are `spread` times those of [`arb_trades`] (up to about 4 days × spread).
fn arb_trades_spread(spread: i64) -> impl Strategy<Value = Vec<Trade>> {
    prop::collection::vec(
        (0i64..200_000, 1i64..1_000_000, 0i64..1_000_000, any::<bool>(), 1i64..4),
        1..300,
    )
    .prop_map(move |rows| {
        let (mut time, mut raw) = (T0, 0);
        rows.into_iter()
            .enumerate()
            .map(|(i, (dt, price, qty, m, n))| {
                time += dt * (dt % 7) * spread; // bursts, quiet stretches, shared ms
                raw += n;
                Trade {
                    id: i as i64 + 1,
                    price,
                    qty,
                    first_id: raw - n + 1,
                    last_id: raw,
                    time,
                    buyer_is_maker: m,
                }
            })
            .collect()
    })
}

#[test]
fn runs_are_cut_and_clipped_without_being_walked() {
    let g = Grid::utc(Interval::Fixed { ms: 1_000 }, TimeUnit::Millis);
    // 400 days of quiet seconds: one minute of it is read, the rest never expanded.
    let run = FlatRun { start: T0, end: T0 + 400 * 86_400_000, price: 7 };
    let minute = flat_periods(&g, &run, T0 + 1_500, T0 + 61_000, None).unwrap();
    assert_eq!(minute.len(), 59);
    assert_eq!(minute[0], (T0 + 2_000, T0 + 2_999));
    assert_eq!(flat_periods(&g, &run, T0, T0 + 10_000, Some(3)).unwrap().len(), 3);
    let tail = flat_periods(&g, &run, i64::MIN, i64::MAX, Some(2)).unwrap();
    assert_eq!(tail, vec![(run.end - 2_000, run.end - 1_001), (run.end - 1_000, run.end - 1)]);
    assert!(flat_periods(&g, &run, i64::MIN, i64::MAX, None).is_err(), "34.6 M: over the bound");
    let (head, rest) = split_run(&g, &run, 10);
    assert_eq!((head.start, head.end), (T0, T0 + 10_000));
    assert_eq!(rest.map(|r| (r.start, r.end)), Some((T0 + 10_000, run.end)));
    assert_eq!(split_run(&g, &head, 10), (head, None));
    // Months: lengths differ, cuts still land on the 1st.
    let m = Grid::utc(Interval::Month, TimeUnit::Millis);
    let months = FlatRun { start: T0, end: m.advance(T0, 14).unwrap(), price: 1 };
    let got = flat_periods(&m, &months, T0 + 40 * 86_400_000, i64::MAX, Some(100)).unwrap();
    assert_eq!(got.len(), 12, "Mar 2020 .. Feb 2021");
    assert_eq!(got[0].0, m.advance(T0, 2).unwrap());
}

/// Each grid's klines and counts aggregated with the others (finer ones rolled up into
/// coarser ones) against the same grid aggregated alone (every trade applied to it).
fn rolled_up_together_as_alone(
    trades: &[Trade],
    names: &[&str],
    picks: &[prop::sample::Index],
    tz_minutes: i64,
    anchor_days: i64,
) -> Result<(), TestCaseError> {
    let g: Vec<Grid> = picks
        .iter()
        .map(|p| {
            let iv = names[p.index(names.len())].parse::<Interval>().unwrap();
            Grid::new(iv, TimeUnit::Millis, tz_minutes * MINUTE_MS, T0 + anchor_days * 86_400_000)
        })
        .collect();
    let (together, counts) = aggregate(&g, trades, QuoteRule::PerTrade).unwrap();
    for (i, grid) in g.iter().enumerate() {
        let (alone, alone_counts) = aggregate(&[*grid], trades, QuoteRule::PerTrade).unwrap();
        prop_assert_eq!(&together[i], &alone[0], "{}", grid.interval);
        prop_assert_eq!(counts, alone_counts);
    }
    Ok(())
}

proptest! {
    #[test]
    fn klines_rolled_up_from_finer_grids_are_those_of_every_trade(
        trades in arb_trades(),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 1..6),
        tz in -24i64..=28,
        anchor in 0i64..3,
    ) {
        let names = ["1s", "15s", "1m", "3m", "5m", "7m", "15m", "90m", "1h", "2h", "4h", "1d", "3d"];
        rolled_up_together_as_alone(&trades, &names, &picks, tz * 30, anchor)?;
    }

    #[test]
    fn weeks_and_months_rolled_up_from_finer_grids_are_those_of_every_trade(
        trades in arb_trades_spread(40),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 1..6),
        tz in -24i64..=28,
        anchor in 0i64..3,
    ) {
        let names = ["1h", "4h", "6h", "8h", "12h", "1d", "2d", "3d", "1w", "1M"];
        rolled_up_together_as_alone(&trades, &names, &picks, tz * 30, anchor)?;
    }

    #[test]
    fn any_split_of_the_input_gives_the_same_klines(trades in arb_trades(), cut in any::<prop::sample::Index>()) {
        let g = grids(&["1m", "5m", "1h"], TimeUnit::Millis);
        let (whole, _) = aggregate(&g, &trades, QuoteRule::PerTrade).unwrap();
        let cut = cut.index(trades.len() + 1);
        let mut agg = Aggregator::new(g.clone());
        let mut out = Collect::new(&g);
        for part in [&trades[..cut], &trades[cut..]] {
            for t in part {
                let _ = agg.push(t, &mut out);
            }
        }
        agg.finish(&mut out);
        prop_assert_eq!(out.klines, whole);
    }

    #[test]
    fn rolled_up_1m_equals_direct_aggregation(trades in arb_trades()) {
        let names = ["1m", "5m", "15m", "1h", "1d", "1w", "1M"];
        let g = grids(&names, TimeUnit::Millis);
        let (direct, _) = aggregate(&g, &trades, QuoteRule::PerTrade).unwrap();
        for (i, coarse) in g.iter().enumerate().skip(1) {
            let rolled = rollup(&direct[0], coarse).unwrap();
            prop_assert_eq!(&rolled, &direct[i], "{}", names[i]);
        }
    }

    #[test]
    fn duplicates_change_nothing(trades in arb_trades(), dups in prop::collection::vec(any::<prop::sample::Index>(), 0..50)) {
        let g = grids(&["1m", "1h"], TimeUnit::Millis);
        let (clean, _) = aggregate(&g, &trades, QuoteRule::PerTrade).unwrap();
        let mut noisy = trades.clone();
        for d in &dups {
            let at = d.index(noisy.len());
            let back = d.index(at + 1);
            noisy.insert(at + 1, noisy[back]);
        }
        let (again, counts) = aggregate(&g, &noisy, QuoteRule::PerTrade).unwrap();
        prop_assert_eq!(again, clean);
        prop_assert_eq!(counts.duplicates, noisy.len() as u64 - trades.len() as u64);
    }
}

#[test]
fn aggregate_trades_detects_the_unit_places_the_grid_and_names_the_partial_edges() {
    let t0 = 1_735_689_600_000_000; // 2025-01-01 in µs
    let trades = [trade(1, t0 + 30_000_000, 100, 1), trade(2, t0 + 90_000_000, 101, 1)];
    let opts = AggregateOptions {
        intervals: vec![Interval::Fixed { ms: MINUTE_MS }],
        unit: None,
        tz_offset_ms: 0,
        anchor_3d_ms: None,
        quote_rule: QuoteRule::PerTrade,
        covers: None,
    };
    let got = aggregate_trades(&trades, &opts).unwrap();
    let opens: Vec<i64> = got.klines[0].iter().map(|k| k.open_time).collect();
    assert_eq!(opens, [t0, t0 + 60_000_000], "µs detected: minutes of 60e6 ticks");
    assert_eq!(got.partial, [vec![t0, t0 + 60_000_000]], "both edges are partial by default");
    let whole_day = AggregateOptions { covers: Some((t0, t0 + 86_400_000_000)), ..opts };
    let got = aggregate_trades(&trades, &whole_day).unwrap();
    assert_eq!(got.partial, [Vec::<i64>::new()], "a dump covering the day leaves none partial");
    assert_eq!(got.counts.applied, 2);
}
