//! The two ways a replay runs: whole symbols side by side, or one symbol at a time through a
//! pipeline of parser threads.

use super::*;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One symbol's files (a range of the plan, which groups them) and their size in bytes.
pub(super) type Job = (Range<usize>, u64);

/// The input's symbols when they are worth replaying side by side on `threads` threads:
/// several of them, none holding more than half the bytes (one thread would then finish it
/// long after the others). `None`: pipeline.
pub(super) fn symbols_side_by_side(
    files: &[(String, PathBuf)],
    threads: usize,
) -> Option<Vec<Job>> {
    if threads < 2 {
        return None;
    }
    let mut jobs: Vec<Range<usize>> = Vec::new();
    for (i, (symbol, _)) in files.iter().enumerate() {
        match jobs.last_mut() {
            Some(job) if files[job.start].0 == *symbol => job.end = i + 1,
            _ => jobs.push(i..i + 1),
        }
    }
    let size = |job: &Range<usize>| -> u64 {
        files[job.clone()].iter().map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len())).sum()
    };
    let jobs: Vec<Job> = jobs.into_iter().map(|j| (j.clone(), size(&j))).collect();
    let total: u64 = jobs.iter().map(|j| j.1).sum();
    let largest = jobs.iter().map(|j| j.1).max().unwrap_or(0);
    (jobs.len() >= 2 && largest * 2 <= total).then_some(jobs)
}

/// Replays each symbol of `jobs` on one of `threads` threads (largest first), then merges their
/// summaries in input order. A failed symbol stops the symbols after it (in input order) from
/// starting; the error reported is the first in input order, as one thread would report it.
pub(super) fn by_symbol(
    into: &mut Consumer<'_>,
    jobs: &[Job],
    threads: usize,
) -> Result<(), ReplayError> {
    let (opts, files, bar) = (into.opts, into.files, into.bar.clone());
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&j| std::cmp::Reverse(jobs[j].1));
    let next = AtomicUsize::new(0);
    let failed_at = AtomicUsize::new(usize::MAX);
    let done: Mutex<Vec<Option<Result<Consumer<'_>, ReplayError>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.min(jobs.len()) {
            s.spawn(|| loop {
                let Some(&j) = order.get(next.fetch_add(1, Ordering::Relaxed)) else { return };
                if j > failed_at.load(Ordering::Relaxed) {
                    continue;
                }
                let result = replay_symbol(opts, files, jobs[j].0.clone(), &bar, || {
                    j > failed_at.load(Ordering::Relaxed)
                });
                if result.is_err() {
                    failed_at.fetch_min(j, Ordering::Relaxed);
                }
                done.lock().expect("not poisoned")[j] = Some(result);
            });
        }
    });
    for result in done.into_inner().expect("not poisoned") {
        match result {
            Some(Ok(consumer)) => into.merge(consumer),
            Some(Err(e)) => return Err(e),
            None => {} // after a failed symbol: not started
        }
    }
    Ok(())
}

/// One symbol's files, read, parsed and aggregated on the calling thread; `stop()` says a
/// symbol before it failed (what this one did is then dropped).
fn replay_symbol<'a>(
    opts: &'a ReplayOptions,
    files: &'a [(String, PathBuf)],
    job: Range<usize>,
    bar: &indicatif::ProgressBar,
    stop: impl Fn() -> bool,
) -> Result<Consumer<'a>, ReplayError> {
    let mut consumer = Consumer::new(opts, files, bar.clone());
    let pools = Pools::new();
    let mut failed: Option<ReplayError> = None;
    let mut seq = 0;
    for file in job {
        let path = &files[file].1;
        let kind = layout_of(path);
        let mut emit = |block: Block| {
            if stop() {
                return false;
            }
            match consumer.handle(parse(block, &pools), &pools) {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        };
        let read = for_each_csv(path, |name, r| {
            read_source(name, kind, r, (file, &mut seq), &mut emit, &pools)
        });
        if let Some(e) = failed.take() {
            return Err(e);
        }
        read.map_err(io_err(path))?;
    }
    consumer.finish_symbol()?;
    Ok(consumer)
}

/// Every symbol in turn on the calling thread, its blocks read by one thread and parsed by
/// `threads`, put back in order here.
pub(super) fn pipelined(consumer: &mut Consumer<'_>, threads: usize) -> Result<(), ReplayError> {
    let files = consumer.files;
    let reader_error: Mutex<Option<ReplayError>> = Mutex::new(None);
    let pools = Pools::new();
    let result: Result<(), ReplayError> = std::thread::scope(|s| {
        let (block_tx, block_rx) = bounded::<Block>(2 * threads);
        let (parsed_tx, parsed_rx) = bounded::<Parsed>(2 * threads);
        let reader_error = &reader_error;
        let pools = &pools;
        s.spawn(move || {
            let mut seq = 0;
            let mut emit = |block: Block| block_tx.send(block).is_ok();
            for (i, (_, path)) in files.iter().enumerate() {
                let kind = layout_of(path);
                let res = for_each_csv(path, |name, r| {
                    read_source(name, kind, r, (i, &mut seq), &mut emit, pools)
                });
                if let Err(e) = res {
                    *reader_error.lock().expect("not poisoned") = Some(io_err(path)(e));
                    return;
                }
            }
        });
        for _ in 0..threads {
            let (rx, tx) = (block_rx.clone(), parsed_tx.clone());
            s.spawn(move || parse_worker(rx, tx, pools));
        }
        drop((block_rx, parsed_tx));
        let mut pending = BTreeMap::new();
        let mut next = 0u64;
        for parsed in parsed_rx {
            pending.insert(parsed.seq, parsed);
            while let Some(p) = pending.remove(&next) {
                consumer.handle(p, pools)?;
                next += 1;
            }
        }
        Ok(())
    });
    result?;
    if let Some(e) = reader_error.into_inner().expect("not poisoned") {
        return Err(e);
    }
    consumer.finish_symbol()
}

/// What a file's name says it holds (aggTrades or trades), if it says.
fn layout_of(path: &Path) -> Option<Layout> {
    path.file_name().and_then(|n| n.to_str()).and_then(Layout::of_file_name)
}
