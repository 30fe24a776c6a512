//! Input files: plain CSV or CSV inside Binance's `.zip`, and the symbol in their names.

use super::csv::Layout;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The symbol in a Binance public-data file name of aggTrades or trades:
/// `BTCUSDT-aggTrades-2020-01-02.csv` or `BTCUSDT-trades-2024-01-02.zip` → `BTCUSDT`.
pub fn symbol_from_file_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let (sym, _) = name.split_once('-')?;
    let ok = !sym.is_empty()
        && sym.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
        && Layout::of_file_name(name).is_some();
    ok.then(|| sym.to_string())
}

/// The UTC span `[start, end)` in ms a Binance public-data file covers by its name: a day
/// (`BTCUSDT-trades-2024-01-02.zip`) or a month (`BTCUSDT-aggTrades-2024-01.zip`).
pub fn date_span_of_file_name(path: &Path) -> Option<(i64, i64)> {
    use crate::interval::{days_from_civil, DAY_MS};
    let name = path.file_name()?.to_str()?;
    Layout::of_file_name(name)?;
    let stem = name.split('.').next()?;
    let parts: Vec<&str> = stem.rsplitn(4, '-').collect();
    let num = |s: &str, len: usize| (s.len() == len).then(|| s.parse::<u32>().ok()).flatten();
    let (y, m, d) = match parts.as_slice() {
        [d, m, y, _] if num(d, 2).is_some() && num(m, 2).is_some() && num(y, 4).is_some() => {
            (num(y, 4)?, num(m, 2)?, Some(num(d, 2)?))
        }
        [m, y, ..] if num(m, 2).is_some() && num(y, 4).is_some() => (num(y, 4)?, num(m, 2)?, None),
        _ => return None,
    };
    if !(1..=12).contains(&m) || d.is_some_and(|d| !(1..=31).contains(&d)) {
        return None;
    }
    let y = i64::from(y);
    let start = days_from_civil(y, m, d.unwrap_or(1)) * DAY_MS;
    let end = match d {
        Some(_) => start + DAY_MS,
        None if m == 12 => days_from_civil(y + 1, 1, 1) * DAY_MS,
        None => days_from_civil(y, m + 1, 1) * DAY_MS,
    };
    Some((start, end))
}

/// Whether the path names a zip archive.
pub fn is_zip(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

/// Uncompressed bytes a file will yield (for progress).
pub fn content_len(path: &Path) -> io::Result<u64> {
    if !is_zip(path) {
        return Ok(std::fs::metadata(path)?.len());
    }
    let mut archive = zip::ZipArchive::new(File::open(path)?).map_err(io::Error::other)?;
    let mut total = 0;
    for i in 0..archive.len() {
        total += archive.by_index(i).map_err(io::Error::other)?.size();
    }
    Ok(total)
}

/// Calls `f(entry_name, reader)` for the CSV content of `path`: the file itself, or each
/// `.csv` entry of a zip in name order (Binance names sort by date; archive order need not).
pub fn for_each_csv(
    path: &Path,
    mut f: impl FnMut(&str, &mut dyn Read) -> io::Result<()>,
) -> io::Result<()> {
    let display = path.display().to_string();
    if !is_zip(path) {
        return f(&display, &mut File::open(path)?);
    }
    let mut archive = zip::ZipArchive::new(File::open(path)?).map_err(io::Error::other)?;
    // Directories end in '/', so they never end in ".csv".
    let mut members: Vec<(String, usize)> = (0..archive.len())
        .filter_map(|i| archive.name_for_index(i).map(|n| (n.to_string(), i)))
        .filter(|(n, _)| n.to_ascii_lowercase().ends_with(".csv"))
        .collect();
    members.sort();
    for (member, i) in members {
        let mut entry = archive.by_index(i).map_err(io::Error::other)?;
        let name = format!("{display}:{member}");
        f(&name, &mut entry)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_members_are_read_in_name_order() {
        use std::io::Write;
        let path = std::env::temp_dir()
            .join(format!("kline_core-{}-order", std::process::id()))
            .join("BTCUSDT-aggTrades-2020-01.zip");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut z = zip::ZipWriter::new(File::create(&path).unwrap());
        for day in ["03", "01", "02"] {
            let name = format!("BTCUSDT-aggTrades-2020-01-{day}.csv");
            z.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
            z.write_all(day.as_bytes()).unwrap();
        }
        z.start_file("README.txt", zip::write::SimpleFileOptions::default()).unwrap();
        z.finish().unwrap();
        let mut seen = Vec::new();
        for_each_csv(&path, |name, r| {
            let mut day = String::new();
            r.read_to_string(&mut day)?;
            seen.push((name.rsplit_once(':').unwrap().1.to_string(), day));
            Ok(())
        })
        .unwrap();
        let days: Vec<_> = seen.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(days, ["01", "02", "03"], "{seen:?}");
    }

    #[test]
    fn symbols_from_binance_names() {
        let s = |p: &str| symbol_from_file_name(Path::new(p));
        assert_eq!(s("/d/BTCUSDT-aggTrades-2020-01-02.csv").as_deref(), Some("BTCUSDT"));
        assert_eq!(s("ETHUSD_PERP-aggTrades-2021-07-22.zip").as_deref(), Some("ETHUSD_PERP"));
        assert_eq!(s("BTCUSDT-1m-2020-01-02.csv"), None);
        assert_eq!(s("trades.csv"), None);
        assert_eq!(s("BTCUSDT-trades-2024-01-02.zip").as_deref(), Some("BTCUSDT"));
    }

    #[test]
    fn the_span_a_file_name_covers() {
        let d = |p: &str| date_span_of_file_name(Path::new(p));
        let jan2 = 1_704_153_600_000; // 2024-01-02 00:00 UTC
        assert_eq!(d("/x/BTCUSDT-trades-2024-01-02.zip"), Some((jan2, jan2 + 86_400_000)));
        assert_eq!(d("BTCUSDT-aggTrades-2024-01-02.csv"), Some((jan2, jan2 + 86_400_000)));
        let jan1 = jan2 - 86_400_000;
        assert_eq!(d("BTCUSDT-aggTrades-2024-01.zip"), Some((jan1, jan1 + 31 * 86_400_000)));
        let dec1 = 1_701_388_800_000; // 2023-12-01
        assert_eq!(d("ETHUSD_PERP-aggTrades-2023-12.zip"), Some((dec1, jan1)));
        assert_eq!(d("BTCUSDT-aggTrades-2024-13.zip"), None);
        assert_eq!(d("BTCUSDT-aggTrades.csv"), None);
        assert_eq!(d("BTCUSDT-1m-2024-01-02.zip"), None);
    }
}
