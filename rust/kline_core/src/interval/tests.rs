use super::*;

#[test]
fn a_grid_refines_a_coarser_one_only_where_each_coarse_boundary_is_its_own() {
    let g = |name: &str, tz_minutes: i64, anchor: i64| {
        Grid::new(name.parse().unwrap(), TimeUnit::Millis, tz_minutes * MINUTE_MS, anchor)
    };
    let utc = |name: &str| g(name, 0, 0);
    for coarse in ["5m", "1h", "1d", "3d", "1w", "1M"] {
        assert!(utc("1m").refines(&utc(coarse)), "1m refines {coarse}");
    }
    assert!(!utc("7m").refines(&utc("1h")), "60 is no multiple of 7");
    assert!(!utc("1h").refines(&utc("1m")) && !utc("1h").refines(&utc("1h")));
    assert!(!utc("1w").refines(&utc("1M")) && !utc("1M").refines(&utc("1M")));
    assert!(!utc("2d").refines(&utc("1w")), "a week is no whole number of 2 days");
    // +05:30: local days start at 18:30 UTC, on a half-hour but not an hour.
    assert!(g("30m", 330, 0).refines(&g("1d", 330, 0)));
    assert!(!g("1h", 330, 0).refines(&g("1d", 330, 0)));
    assert!(g("1d", 480, 0).refines(&g("1M", 480, 0)), "both at +08:00");
    assert!(!g("1d", 0, 0).refines(&g("1w", 480, 0)), "UTC days, weeks at +08:00");
    // 3d from the listing day: a day grid at the anchor's offset, an hour grid always.
    let listed = 1_502_928_000_000; // 2017-08-17
    assert!(utc("1d").refines(&g("3d", 0, listed)) && utc("1h").refines(&g("3d", 0, listed)));
    assert!(!utc("2d").refines(&g("3d", 0, listed)));
    let us = Grid::utc("1m".parse().unwrap(), TimeUnit::Micros);
    assert!(!us.refines(&utc("1h")), "a µs grid and a ms grid are not comparable");
    assert!(us.refines(&Grid::utc("1h".parse().unwrap(), TimeUnit::Micros)));
    // Lengths and the first Monday in µs: minutes turn at every week's start, 8 s does not
    // divide a minute.
    let us = |name: &str| Grid::utc(name.parse().unwrap(), TimeUnit::Micros);
    assert!(us("1m").refines(&us("1w")) && !us("8s").refines(&us("1m")));
    // Days at +08:00 (themselves shifted) under 2d and weeks at +08:00: the offsets cancel.
    assert!(g("1d", 480, 0).refines(&g("2d", 480, 0)));
    assert!(g("1d", 480, 0).refines(&g("1w", 480, 0)));
}
use proptest::prelude::*;

const MS: TimeUnit = TimeUnit::Millis;

fn iv(s: &str) -> Interval {
    s.parse().unwrap()
}

#[test]
fn the_shortest_period_is_a_february_for_months_and_the_length_otherwise() {
    let got: Vec<i64> =
        ["1s", "7m", "3d", "1w", "1M"].iter().map(|s| iv(s).shortest_ms()).collect();
    assert_eq!(got, [1_000, 420_000, 3 * DAY_MS, 7 * DAY_MS, 28 * DAY_MS]);
    let feb = Grid::utc(iv("1M"), MS);
    let start = days_from_civil(2023, 2, 1) * DAY_MS;
    assert_eq!(feb.next_start(start) - start, iv("1M").shortest_ms());
}

#[test]
fn parses_all_binance_intervals_and_prints_them_back() {
    for name in Interval::BINANCE {
        assert_eq!(iv(name).to_string(), name);
    }
    assert_eq!(iv("10s"), Interval::Fixed { ms: 10_000 });
    assert_eq!(iv("7m"), Interval::Fixed { ms: 420_000 });
    assert_eq!(iv("90s").to_string(), "90s");
    for bad in ["", "m", "0m", "1x", "1W", "2M", "-1m", "1.5h", "999999d"] {
        assert!(bad.parse::<Interval>().is_err(), "{bad}");
    }
}

#[test]
fn binance_close_times() {
    // 2020-01-01 00:00 UTC, from the official 1m, 5m and 1d files.
    let t0 = 1_577_836_800_000;
    for (name, close) in [("1m", 59_999), ("5m", 299_999), ("1d", 86_399_999)] {
        let g = Grid::utc(iv(name), MS);
        assert_eq!(g.bucket_start(t0 + 17), t0);
        assert_eq!(g.close_time(t0), t0 + close);
    }
    let us = Grid::utc(iv("1m"), TimeUnit::Micros);
    assert_eq!(us.close_time(t0 * 1000), t0 * 1000 + 59_999_999);
}

#[test]
fn week_starts_monday() {
    let g = Grid::utc(Interval::Week, MS);
    // Wed 2020-01-01 → Mon 2019-12-30.
    let start = g.bucket_start(1_577_836_800_000);
    assert_eq!(start, 1_577_664_000_000);
    assert_eq!(start % WEEK_MS, 345_600_000);
    assert_eq!(g.close_time(start) - start, WEEK_MS - 1);
}

#[test]
fn month_is_the_calendar_month() {
    let g = Grid::utc(Interval::Month, MS);
    let feb_2024 = days_from_civil(2024, 2, 1) * DAY_MS;
    let t = feb_2024 + 28 * DAY_MS + 5; // 2024-02-29, leap day
    assert_eq!(g.bucket_start(t), feb_2024);
    assert_eq!(g.next_start(feb_2024), days_from_civil(2024, 3, 1) * DAY_MS);
    let dec = days_from_civil(2023, 12, 1) * DAY_MS;
    assert_eq!(g.next_start(dec), days_from_civil(2024, 1, 1) * DAY_MS);
    assert_eq!(g.bucket_start(-1), days_from_civil(1969, 12, 1) * DAY_MS);
}

#[test]
fn time_zone_moves_days_not_hours() {
    let tz = parse_tz_offset("+08:00").unwrap();
    // A recorded 1d kline with timeZone +8 opened at 16:00 UTC the day before.
    let day = Grid::new(iv("1d"), MS, tz, 0);
    let t = 1_577_836_800_000 + 3 * HOUR_MS; // 2020-01-01 03:00 UTC = 11:00 +08
    assert_eq!(day.bucket_start(t), 1_577_836_800_000 - 8 * HOUR_MS);
    let hour = Grid::new(iv("1h"), MS, tz, 0);
    assert_eq!(hour.bucket_start(t), t);
    let month = Grid::new(Interval::Month, MS, tz, 0);
    // 2020-01-31 20:00 UTC is 2020-02-01 04:00 at +08.
    let t = days_from_civil(2020, 1, 31) * DAY_MS + 20 * HOUR_MS;
    assert_eq!(month.bucket_start(t), days_from_civil(2020, 2, 1) * DAY_MS - 8 * HOUR_MS);
    assert_eq!(parse_tz_offset("-05:30"), Ok(-(5 * HOUR_MS + 30 * MINUTE_MS)));
    assert_eq!(parse_tz_offset("14"), Ok(14 * HOUR_MS));
    assert_eq!(parse_tz_offset("-1:00"), Ok(-HOUR_MS));
    assert_eq!(parse_tz_offset("0"), Ok(0));
    assert_eq!(format_tz_offset(parse_tz_offset("05:45").unwrap()), "+05:45");
    assert_eq!(format_tz_offset(-(5 * HOUR_MS + 30 * MINUTE_MS)), "-05:30");
    for bad in ["+15:00", "-13", "8:60", "abc", "+08:xx", "Z", "UTC", "+0800", "8:5", "", "+"] {
        assert!(parse_tz_offset(bad).is_err(), "{bad}");
    }
}

#[test]
fn three_day_steps_from_the_anchor() {
    let btc_listing = days_from_civil(2017, 8, 17) * DAY_MS;
    assert_eq!(btc_listing % (3 * DAY_MS), DAY_MS);
    let g = Grid::new(Interval::ThreeDay, MS, 0, btc_listing);
    let t = days_from_civil(2020, 1, 2) * DAY_MS + 5;
    let start = g.bucket_start(t);
    assert_eq!((start - btc_listing) % (3 * DAY_MS), 0);
    assert!(start <= t && t < g.next_start(start));
    assert_eq!(Grid::utc(Interval::ThreeDay, MS).bucket_start(t) % (3 * DAY_MS), 0);
}

#[test]
fn periods_between_and_advance_agree_with_stepping() {
    let t0 = 1_577_836_800_000;
    for name in Interval::BINANCE {
        for tz in [0, 8 * HOUR_MS, -5 * HOUR_MS] {
            let g = Grid::new(iv(name), MS, tz, 1_502_928_000_000);
            let start = g.bucket_start(t0);
            let mut t = start;
            for n in 0..40 {
                assert_eq!(g.advance(start, n), Some(t), "{name} {tz} {n}");
                assert_eq!(g.periods_between(start, t), n, "{name} {tz} {n}");
                t = g.next_start(t);
            }
        }
    }
    let g = Grid::utc(Interval::Fixed { ms: 1_000 }, MS);
    assert_eq!(g.advance(0, i64::MAX / 10), None);
}

#[test]
fn units_print_as_ms_and_us() {
    assert_eq!((TimeUnit::Millis.name(), TimeUnit::Micros.name()), ("ms", "us"));
}

#[test]
fn nominal_lengths_and_only_1d_and_up_follow_the_time_zone() {
    assert_eq!(Interval::ThreeDay.nominal_ms(), 3 * DAY_MS);
    assert_eq!(Interval::Week.nominal_ms(), WEEK_MS);
    assert_eq!(Interval::Month.nominal_ms(), 31 * DAY_MS);
    assert_eq!(iv("12h").nominal_ms(), 12 * HOUR_MS);
    let follow: Vec<&str> =
        Interval::BINANCE.into_iter().filter(|n| iv(n).follows_time_zone()).collect();
    assert_eq!(follow, ["1d", "3d", "1w", "1M"]);
}

#[test]
fn three_days_is_the_anchored_grid_and_72_hours_a_fixed_one() {
    assert_eq!(iv("3d"), Interval::ThreeDay);
    assert_eq!(iv("72h"), Interval::Fixed { ms: 3 * DAY_MS });
}

#[test]
fn a_custom_interval_is_at_most_366_days_in_any_unit() {
    for ok in ["366d", "8784h", "527040m", "31622400s"] {
        assert_eq!(iv(ok), Interval::Fixed { ms: 366 * DAY_MS }, "{ok}");
    }
    for bad in ["367d", "8785h", "527041m", "31622401s"] {
        assert!(bad.parse::<Interval>().is_err(), "{bad}");
    }
}

#[test]
fn the_epoch_3d_warning_is_given_only_for_3d_without_an_anchor() {
    let warning = epoch_3d_warning(&[iv("1d"), Interval::ThreeDay], None);
    assert!(warning.is_some_and(|w| w.contains("3d anchor")), "{warning:?}");
    assert_eq!(epoch_3d_warning(&[Interval::ThreeDay], Some(1_502_928_000_000)), None);
    assert_eq!(epoch_3d_warning(&[iv("1d"), iv("1w")], None), None);
}

#[test]
fn a_zero_offset_prints_with_a_plus() {
    assert_eq!(format_tz_offset(0), "+00:00");
    assert_eq!(format_tz_offset(-MINUTE_MS), "-00:01");
}

#[test]
fn a_microsecond_grid_has_the_millisecond_grids_boundaries_times_1000() {
    let leap_day = days_from_civil(2024, 2, 29) * DAY_MS + 5;
    let times = [-1, 0, 1_577_836_800_000 + 17, leap_day, 1_735_689_599_999];
    for name in Interval::BINANCE {
        for tz in [0, 8 * HOUR_MS, -(5 * HOUR_MS + 30 * MINUTE_MS)] {
            let ms = Grid::new(iv(name), MS, tz, 1_502_928_000_000);
            let us = Grid::new(iv(name), TimeUnit::Micros, tz, 1_502_928_000_000);
            for t in times {
                let s = ms.bucket_start(t);
                let at = format!("{name} {tz} {t}");
                assert_eq!(us.bucket_start(t * 1_000 + 999), s * 1_000, "{at}");
                assert_eq!(us.next_start(s * 1_000), ms.next_start(s) * 1_000, "{at}");
                let later = ms.advance(s, 5).unwrap();
                assert_eq!(us.advance(s * 1_000, 5), Some(later * 1_000), "{at}");
                assert_eq!(us.periods_between(s * 1_000, later * 1_000), 5, "{at}");
            }
        }
    }
}

#[test]
fn the_last_day_of_a_400_year_era_is_february_29() {
    // 2000-01-01 is day 10 957 since the epoch; + 31 + 28 days is 2000-02-29.
    assert_eq!(days_from_civil(2000, 2, 29), 11_016);
    assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    assert_eq!(civil_from_days(11_017), (2000, 3, 1));
    for (y, m, d) in [(1600, 2, 29), (2400, 2, 29), (1970, 1, 1), (1969, 12, 31), (2100, 3, 1)] {
        assert_eq!(civil_from_days(days_from_civil(y, m, d)), (y, m, d));
    }
}

proptest! {
    #[test]
    fn every_grid_contains_its_time(
        t in -4_000_000_000_000i64..8_000_000_000_000,
        which in 0usize..16,
        tz in MIN_TZ_OFFSET_MS / MINUTE_MS..=MAX_TZ_OFFSET_MS / MINUTE_MS,
        micros in any::<bool>(),
    ) {
        let unit = if micros { TimeUnit::Micros } else { MS };
        let t = t * unit.per_ms();
        let g = Grid::new(iv(Interval::BINANCE[which]), unit, tz * MINUTE_MS, 1_502_928_000_000);
        let s = g.bucket_start(t);
        prop_assert!(s <= t && t < g.next_start(s));
        prop_assert_eq!(g.bucket_start(g.next_start(s)), g.next_start(s));
        prop_assert_eq!(g.bucket_start(s), s);
    }

    #[test]
    fn civil_round_trips(days in -1_000_000i64..1_000_000) {
        let (y, m, d) = civil_from_days(days);
        prop_assert_eq!(days_from_civil(y, m, d), days);
    }
}
