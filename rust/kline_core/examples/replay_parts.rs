//! The replay's parts timed apart, in memory, best of N of the thread's CPU time (robust on a busy machine):
//! `cargo run --profile profiling -p kline_core --example replay_parts -- DIR [ROUNDS]`.
//! Parses every CSV of DIR block by block, then aggregates each symbol's trades to 1m+5m+1h.

use kline_core::aggregate::Aggregator;
use kline_core::decimal::QuoteRule;
use kline_core::interval::{Grid, Interval, TimeUnit};
use kline_core::kline::{FlatRun, Kline};
use kline_core::parse::csv::{parse_block, Layout};

/// CPU time of this thread (s): less disturbed than wall time by other work on the machine.
fn cpu_now() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a pointer to a timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

struct Count(u64);

impl kline_core::aggregate::KlineSink for Count {
    fn kline(&mut self, _: usize, k: &Kline) {
        self.0 += k.trades;
    }
    fn flat_run(&mut self, _: usize, _: &FlatRun) {}
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = &args[0];
    let rounds: usize = args.get(1).map_or(5, |r| r.parse().expect("rounds"));
    let mut files: Vec<_> =
        std::fs::read_dir(dir).expect("dir").map(|e| e.unwrap().path()).collect();
    files.sort();
    let data: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).expect("read")).collect();
    let bytes: usize = data.iter().map(Vec::len).sum();
    let block = 1 << 20;
    let parse = |keep: bool| -> Vec<Vec<kline_core::Trade>> {
        let mut kept = Vec::new();
        let (mut buf, mut bad) = (Vec::with_capacity(block / 40), Vec::new());
        for d in &data {
            let body = &d[d.iter().position(|&c| c == b'\n').unwrap() + 1..];
            let mut out = Vec::new();
            let mut at = 0;
            while at < body.len() {
                let mut end = (at + block).min(body.len());
                while end < body.len() && body[end - 1] != b'\n' {
                    end += 1;
                }
                buf.clear();
                parse_block(Layout::AggTrades, &body[at..end], &mut buf, &mut bad);
                std::hint::black_box(&buf);
                if keep {
                    out.extend_from_slice(&buf);
                }
                at = end;
            }
            kept.push(out);
        }
        kept
    };
    let trades = parse(true);
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let started = cpu_now();
        parse(false);
        best = best.min(cpu_now() - started);
    }
    let n: usize = trades.iter().map(Vec::len).sum();
    println!(
        "parse: {n} trades, {:.0} MB, best {best:.3} s, {:.1} ns/trade",
        bytes as f64 / 1e6,
        best * 1e9 / n as f64
    );
    let grids: Vec<Grid> = ["1m", "5m", "1h"]
        .iter()
        .map(|s| Grid::new(s.parse::<Interval>().unwrap(), TimeUnit::Millis, 0, 0))
        .collect();
    let mut best = f64::MAX;
    let mut total = 0;
    for _ in 0..rounds {
        let started = cpu_now();
        total = 0;
        for ts in &trades {
            let mut agg = Aggregator::new(grids.clone()).with_quote_rule(QuoteRule::PerTrade);
            let mut out = Count(0);
            for t in ts {
                let _ = agg.push(t, &mut out);
            }
            agg.finish(&mut out);
            total += out.0;
        }
        best = best.min(cpu_now() - started);
    }
    println!(
        "aggregate: {total} raw trades, best {best:.3} s, {:.1} ns/trade",
        best * 1e9 / n as f64
    );
}
