//! The reading side of a replay: which files in which order, read into blocks of whole
//! lines, parsed into trades by worker threads.

use super::*;

/// Input files in replay order: grouped by symbol, then by name (Binance names sort by date).
pub(super) fn plan(
    inputs: &[PathBuf],
    symbol: Option<&str>,
) -> Result<Vec<(String, PathBuf)>, ReplayError> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let entries = std::fs::read_dir(input).map_err(io_err(input))?;
            for entry in entries {
                let p = entry.map_err(io_err(input))?.path();
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
                if p.is_file()
                    && (ext.eq_ignore_ascii_case("csv") || ext.eq_ignore_ascii_case("zip"))
                {
                    files.push(p);
                }
            }
        } else {
            files.push(input.clone());
        }
    }
    let mut planned = files
        .into_iter()
        .map(|p| {
            let sym = match symbol {
                // The name becomes a file name in the output directory: [A-Z0-9_] only.
                Some(s) => symbol_name(s)?.into_owned(),
                None => symbol_from_file_name(&p)
                    .ok_or_else(|| ReplayError::NoSymbol(p.display().to_string()))?,
            };
            Ok((sym, p))
        })
        .collect::<Result<Vec<_>, ReplayError>>()?;
    planned.sort_by(|a, b| (&a.0, a.1.file_name()).cmp(&(&b.0, b.1.file_name())));
    planned.dedup();
    for pair in planned.windows(2) {
        let kind = |p: &Path| p.file_name()?.to_str().and_then(Layout::of_file_name);
        let (a, b) = (kind(&pair[0].1), kind(&pair[1].1));
        if pair[0].0 == pair[1].0 && a.is_some() && b.is_some() && a != b {
            return Err(ReplayError::MixedKinds { symbol: pair[0].0.clone() });
        }
    }
    if planned.is_empty() {
        return Err(ReplayError::NoInput);
    }
    Ok(planned)
}

/// Whole lines of one source, in order; `seq` orders blocks across all sources.
pub(super) struct Block {
    pub(super) seq: u64,
    pub(super) file: usize,
    pub(super) source: Arc<str>,
    /// First block of its source: line numbering restarts.
    pub(super) first: bool,
    /// Lines skipped at the start (a header).
    pub(super) skipped: u64,
    /// Its header names COIN-M's `base_qty`.
    pub(super) base_qty: bool,
    pub(super) layout: Layout,
    pub(super) data: Vec<u8>,
    pub(super) skip_bytes: usize,
}

pub(super) struct Parsed {
    pub(super) seq: u64,
    pub(super) file: usize,
    pub(super) source: Arc<str>,
    pub(super) first: bool,
    pub(super) skipped: u64,
    pub(super) base_qty: bool,
    pub(super) lines: u64,
    pub(super) bytes: u64,
    pub(super) trades: Vec<Trade>,
    pub(super) bad: Vec<(u64, String)>,
}

/// Fills `buf` up to `want` bytes; returns true at end of input.
pub(super) fn fill(r: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    let start = buf.len();
    let got = r.take((want.saturating_sub(start)) as u64).read_to_end(buf)?;
    Ok(buf.len() < want || (got == 0 && start < want))
}

/// Buffers handed back by their last user, so steady state allocates (and page-faults) nothing.
pub(super) struct Pools {
    pub(super) bytes: (Sender<Vec<u8>>, Receiver<Vec<u8>>),
    pub(super) trades: (Sender<Vec<Trade>>, Receiver<Vec<Trade>>),
}

impl Pools {
    pub(super) fn new() -> Self {
        Pools { bytes: crossbeam_channel::unbounded(), trades: crossbeam_channel::unbounded() }
    }

    pub(super) fn bytes(&self) -> Vec<u8> {
        let mut b = self.bytes.1.try_recv().unwrap_or_else(|_| Vec::with_capacity(BLOCK + 4096));
        b.clear();
        b
    }

    pub(super) fn trades(&self) -> Vec<Trade> {
        let mut t = self.trades.1.try_recv().unwrap_or_else(|_| Vec::with_capacity(BLOCK / 48));
        t.clear();
        t
    }
}

/// Reads one source (a file, or a zip entry) into blocks of whole lines. `kind`: what its file
/// name says it holds; without it, its header says, else aggTrades.
/// Each block goes to `emit`, which returns false to stop reading (its user stopped).
pub(super) fn read_source(
    name: &str,
    kind: Option<Layout>,
    r: &mut dyn Read,
    (file, seq): (usize, &mut u64),
    emit: &mut dyn FnMut(Block) -> bool,
    pools: &Pools,
) -> io::Result<()> {
    let source: Arc<str> = name.into();
    let mut carry = Vec::new();
    let mut first = true;
    let mut layout = kind.unwrap_or_default();
    loop {
        let mut buf = pools.bytes();
        buf.append(&mut carry);
        let mut want = BLOCK.max(buf.len() + 1);
        let mut eof = fill(r, &mut buf, want)?;
        // Extend until the block holds at least one whole line.
        while !eof && memchr::memchr(b'\n', &buf).is_none() {
            if buf.len() >= MAX_LINE {
                return Err(io::Error::other(format!(
                    "{name}: a line is longer than {MAX_LINE} bytes"
                )));
            }
            want = buf.len() * 2;
            eof = fill(r, &mut buf, want)?;
        }
        if !eof {
            if let Some(cut) = memchr::memrchr(b'\n', &buf) {
                carry.extend_from_slice(&buf[cut + 1..]);
                buf.truncate(cut + 1);
            }
        }
        // An empty source still sends its first (empty) block, so it is counted as read.
        if buf.is_empty() && eof && !first {
            return Ok(());
        }
        let mut skip_bytes = 0;
        let mut skipped = 0;
        let base_qty = first && names_base_qty(&buf);
        if let Some(says) = header(&buf).filter(|_| first) {
            if kind.is_some_and(|k| k != says) {
                return Err(io::Error::other(format!(
                    "{name}: the file name says {} but its header is a {} header",
                    layout.name(),
                    says.name()
                )));
            }
            layout = says;
            skip_bytes = memchr::memchr(b'\n', &buf).map_or(buf.len(), |i| i + 1);
            skipped = 1;
        }
        let block = Block {
            seq: *seq,
            file,
            source: source.clone(),
            first,
            skipped,
            base_qty,
            layout,
            data: buf,
            skip_bytes,
        };
        *seq += 1;
        first = false;
        if !emit(block) {
            return Ok(()); // the consumer stopped (an error it reports)
        }
        if eof {
            return Ok(());
        }
    }
}

/// Parses one block into trades (and bad rows), handing its bytes back to the pool.
pub(super) fn parse(b: Block, pools: &Pools) -> Parsed {
    let mut trades = pools.trades();
    let mut bad = Vec::new();
    let lines = parse_block(b.layout, &b.data[b.skip_bytes..], &mut trades, &mut bad);
    let bytes = b.data.len() as u64;
    let _ = pools.bytes.0.send(b.data);
    Parsed {
        seq: b.seq,
        file: b.file,
        source: b.source,
        first: b.first,
        skipped: b.skipped,
        base_qty: b.base_qty,
        lines,
        bytes,
        trades,
        bad,
    }
}

pub(super) fn parse_worker(rx: Receiver<Block>, tx: Sender<Parsed>, pools: &Pools) {
    for b in rx {
        if tx.send(parse(b, pools)).is_err() {
            return;
        }
    }
}
