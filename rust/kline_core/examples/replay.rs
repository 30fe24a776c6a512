//! The replay without Python, for profiling: `cargo run --profile profiling -p kline_core
//! --example replay -- OUT_DIR INTERVALS THREADS INPUT...` (e.g. `out 1m,5m,1h 0 csv/`).

use kline_core::interval::Interval;
use kline_core::replay::{replay, ReplayOptions};
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, intervals, threads, inputs @ ..] = args.as_slice() else {
        eprintln!("usage: replay OUT_DIR INTERVALS THREADS INPUT...");
        std::process::exit(2);
    };
    let intervals: Vec<Interval> =
        intervals.split(',').map(|s| s.parse().expect("an interval")).collect();
    let mut opts = ReplayOptions::new(intervals, out);
    opts.threads = threads.parse().expect("a thread count");
    let inputs: Vec<PathBuf> = inputs.iter().map(PathBuf::from).collect();
    let summary = replay(&inputs, &opts).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{} rows, {} klines in {:.3} s",
        summary.rows, summary.klines_written, summary.seconds
    );
}
