//! Workload traces: the Azure Functions 2019 per-minute format (and the 2021
//! per-invocation format), read into one compact form.
//!
//! A [`Trace`] holds, per function, the minutes in which it was invoked and how
//! often (sparse: most functions are idle most minutes), its average duration
//! and its memory. Several 2019 invocation files are consecutive days and are
//! joined by function hash. The durations and memory files beside an
//! invocations file are used when present (`durations.csv` / `memory.csv`
//! beside `invocations.csv`, or the upstream names
//! `function_durations_percentiles.anon.dNN.csv` /
//! `app_memory_percentiles.anon.dNN.csv`). Durations are joined by
//! function hash; memory by the function's app (`HashApp` of its
//! invocations row), because Azure measured memory per app: every function
//! of an app gets the app's average allocated memory.
//!
//! Every malformed row is an error naming the file, the line and the field.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Duration assumed when a trace has no durations file: Azure's median
/// per-function average duration in the 2019 sample is 686 ms, rounded up.
pub const DEFAULT_DURATION_MS: f64 = 1_000.0;
/// Memory assumed when a trace has no memory file: Lambda's default size.
pub const DEFAULT_MEMORY_MB: u32 = 128;

/// One function's workload.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionTrace {
    /// The function's id (its hash in the Azure traces).
    pub id: String,
    /// `(minute, invocations)` for every minute with invocations, ascending.
    pub active: Vec<(u32, u32)>,
    /// Average duration, ms (excluding cold starts, as Azure measured it).
    pub duration_ms: f64,
    /// Duration at [`DURATION_PERCENTILES`], ms, when the trace gives them.
    /// Azure's are percentiles of 30-second averages, not of single calls,
    /// so the spread of single calls is somewhat wider than this.
    pub duration_percentiles: Option<[f64; 7]>,
    /// Memory, MB.
    pub memory_mb: u32,
    /// Whether a timer calls it: the trace's `Trigger` is `timer`, or, in
    /// files without that column, its minutes are strictly periodic
    /// ([`looks_periodic`]). A timer fires at a fixed second, so the
    /// simulator places its calls at a fixed offset in their minute.
    pub timer: bool,
}

/// The coefficient of variation of the gaps between a function's active
/// minutes (`None` under 4 active minutes, too few to tell).
pub fn gap_cv(active: &[(u32, u32)]) -> Option<f64> {
    if active.len() < 4 {
        return None;
    }
    let gaps: Vec<f64> = active
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) as f64)
        .collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
    Some(var.sqrt() / mean)
}

/// Whether a function's minutes look like a timer's: gaps between active
/// minutes nearly constant (CV at most 0.1, the Azure paper's periodic
/// class) and the same count in at least 90 % of them (a busy function is
/// active every minute too, but its counts vary).
pub fn looks_periodic(active: &[(u32, u32)]) -> bool {
    if !gap_cv(active).is_some_and(|cv| cv <= 0.1) {
        return false;
    }
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for &(_, n) in active {
        *counts.entry(n).or_default() += 1;
    }
    let modal = counts.values().copied().max().unwrap_or(0);
    modal as f64 >= 0.9 * active.len() as f64
}

impl FunctionTrace {
    /// Total invocations.
    pub fn invocations(&self) -> u64 {
        self.active.iter().map(|&(_, n)| n as u64).sum()
    }

    /// Invocations per minute as a dense series of `minutes` entries.
    pub fn dense(&self, minutes: usize) -> Vec<u32> {
        let mut v = vec![0; minutes];
        for &(m, n) in &self.active {
            if let Some(x) = v.get_mut(m as usize) {
                *x = n;
            }
        }
        v
    }

    /// Little's law concurrency of one minute with `n` invocations: at least
    /// one sandbox if anything ran.
    pub fn concurrency(&self, n: u32) -> f64 {
        if n == 0 {
            0.0
        } else {
            (n as f64 * self.duration_ms / 60_000.0).ceil().max(1.0)
        }
    }
}

/// A whole workload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trace {
    /// The functions, in file order.
    pub functions: Vec<FunctionTrace>,
    /// Length in minutes.
    pub minutes: usize,
}

impl Trace {
    /// The same trace played `times` times back to back.
    pub fn repeated(&self, times: usize) -> Trace {
        let times = times.max(1);
        let functions = self
            .functions
            .iter()
            .map(|f| {
                let mut active = Vec::with_capacity(f.active.len() * times);
                for r in 0..times {
                    let off = (r * self.minutes) as u32;
                    active.extend(f.active.iter().map(|&(m, n)| (m + off, n)));
                }
                FunctionTrace {
                    active,
                    ..f.clone()
                }
            })
            .collect();
        Trace {
            functions,
            minutes: self.minutes * times,
        }
    }

    /// Total invocations.
    pub fn invocations(&self) -> u64 {
        self.functions.iter().map(FunctionTrace::invocations).sum()
    }
}

/// A trace file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be opened or read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A row or header was malformed.
    #[error("{file}:{line}: {field}: {problem}")]
    Malformed {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: u64,
        /// The column.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

fn malformed(
    file: &Path,
    line: u64,
    field: impl Into<String>,
    problem: impl Into<String>,
) -> TraceError {
    TraceError::Malformed {
        file: file.to_path_buf(),
        line,
        field: field.into(),
        problem: problem.into(),
    }
}

/// An open CSV file and its header, for column lookups that name the file.
struct Csv<'a> {
    path: &'a Path,
    rdr: csv::Reader<std::fs::File>,
    headers: csv::StringRecord,
}

impl<'a> Csv<'a> {
    fn open(path: &'a Path) -> Result<Csv<'a>, TraceError> {
        let mut rdr = reader(path)?;
        let headers = rdr.headers().map_err(|e| csv_error(path, e))?.clone();
        Ok(Csv { path, rdr, headers })
    }

    /// The index of a named column, or an error naming the file and column.
    fn col(&self, name: &str) -> Result<usize, TraceError> {
        self.headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| malformed(self.path, 1, name, "column missing"))
    }
}

fn reader(path: &Path) -> Result<csv::Reader<std::fs::File>, TraceError> {
    let file = std::fs::File::open(path).map_err(|source| TraceError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(file))
}

fn csv_error(path: &Path, e: csv::Error) -> TraceError {
    let line = e.position().map_or(0, |p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(source) => TraceError::Io {
            file: path.to_path_buf(),
            source,
        },
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => malformed(
            path,
            line,
            "row",
            format!("has {len} fields, the header has {expected_len}"),
        ),
        other => malformed(path, line, "row", format!("{other:?}")),
    }
}

/// Reads workload files of either format, told apart by their header: Azure
/// 2021 per-invocation files (`app,func,end_timestamp,duration`) are binned
/// per minute (arrivals are then spread within each minute again, so their
/// sub-minute timing is not kept); anything else is read as Azure 2019.
pub fn read_any(paths: &[PathBuf]) -> Result<Trace, TraceError> {
    let Some(first) = paths.first() else {
        return Ok(Trace::default());
    };
    if Csv::open(first)?.col("end_timestamp").is_ok() {
        let mut all = Vec::new();
        for p in paths {
            all.extend(read_azure2021(p)?);
        }
        all.sort_by(|a, b| {
            a.start_ms
                .cmp(&b.start_ms)
                .then_with(|| a.function.cmp(&b.function))
        });
        return Ok(bin_invocations(&all));
    }
    read_azure2019(paths)
}

/// Reads Azure Functions 2019 invocation files (consecutive days) and the
/// durations and memory files beside the first one.
pub fn read_azure2019(paths: &[PathBuf]) -> Result<Trace, TraceError> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut functions: Vec<FunctionTrace> = Vec::new();
    // Each function's app: the memory file is keyed by app (an app's
    // functions share its memory), not by function.
    let mut apps: HashMap<String, String> = HashMap::new();
    let mut triggers: HashMap<String, bool> = HashMap::new();
    let mut offset = 0usize;
    for path in paths {
        let day_minutes = read_invocations(
            path,
            offset,
            &mut index,
            &mut functions,
            &mut apps,
            &mut triggers,
        )?;
        offset += day_minutes;
    }
    for f in &mut functions {
        f.timer = triggers
            .get(&f.id)
            .copied()
            .unwrap_or_else(|| looks_periodic(&f.active));
    }
    if let Some(first) = paths.first() {
        let (dur, mem) = companions(first);
        if let Some(d) = dur.filter(|p| p.exists()) {
            for (id, ms, q) in read_durations(&d)? {
                if let Some(&i) = index.get(&id) {
                    functions[i].duration_ms = ms.max(1.0);
                    functions[i].duration_percentiles = q;
                }
            }
        }
        if let Some(m) = mem.filter(|p| p.exists()) {
            let by_app: HashMap<String, f64> = read_keyed(&m, "HashApp", "AverageAllocatedMb")?
                .into_iter()
                .collect();
            for f in &mut functions {
                let Some(app) = apps.get(&f.id) else { continue };
                if let Some(mb) = by_app.get(app) {
                    f.memory_mb = mb.round().clamp(1.0, 10_240.0) as u32;
                }
            }
        }
    }
    Ok(Trace {
        functions,
        minutes: offset,
    })
}

/// The durations and memory files that belong to an invocations file.
fn companions(inv: &Path) -> (Option<PathBuf>, Option<PathBuf>) {
    let name = inv.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let dir = inv.parent().unwrap_or(Path::new("."));
    if name == "invocations.csv" {
        return (
            Some(dir.join("durations.csv")),
            Some(dir.join("memory.csv")),
        );
    }
    if name.starts_with("invocations_per_function_md") {
        let day = name.rsplit('.').nth(1).unwrap_or("d01");
        let mem_day = if day > "d12" { "d12" } else { day }; // memory files stop at d12
        return (
            Some(dir.join(format!("function_durations_percentiles.anon.{day}.csv"))),
            Some(dir.join(format!("app_memory_percentiles.anon.{mem_day}.csv"))),
        );
    }
    (None, None)
}

/// Where an invocations file keeps what is read from it.
struct Columns {
    app: Option<usize>,
    trigger: Option<usize>,
    id: usize,
    minutes: Vec<usize>,
}

impl Columns {
    fn find(path: &Path, headers: &csv::StringRecord) -> Result<Columns, TraceError> {
        let app_col = headers.iter().position(|h| h == "HashApp");
        let trigger_col = headers.iter().position(|h| h == "Trigger");
        let id_col = headers
            .iter()
            .position(|h| h == "HashFunction")
            .ok_or_else(|| {
                malformed(
                    path,
                    1,
                    "HashFunction",
                    "column missing: not an Azure 2019 invocations file",
                )
            })?;
        let minute_cols: Vec<usize> = headers
            .iter()
            .enumerate()
            .filter(|(_, h)| {
                h.strip_prefix("minute_")
                    .unwrap_or(h)
                    .parse::<u32>()
                    .is_ok()
            })
            .map(|(i, _)| i)
            .collect();
        if minute_cols.is_empty() {
            return Err(malformed(
                path,
                1,
                "minute columns",
                "none found (expected 1..1440 or minute_1..minute_1440)",
            ));
        }
        Ok(Columns {
            app: app_col,
            trigger: trigger_col,
            id: id_col,
            minutes: minute_cols,
        })
    }
}

/// Reads one invocations file; returns its number of minute columns.
fn read_invocations(
    path: &Path,
    offset: usize,
    index: &mut HashMap<String, usize>,
    functions: &mut Vec<FunctionTrace>,
    apps: &mut HashMap<String, String>,
    triggers: &mut HashMap<String, bool>,
) -> Result<usize, TraceError> {
    let mut rdr = reader(path)?;
    let headers = rdr.headers().map_err(|e| csv_error(path, e))?.clone();
    let Columns {
        app: app_col,
        trigger: trigger_col,
        id: id_col,
        minutes: minute_cols,
    } = Columns::find(path, &headers)?;
    let mut rec = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(path, e)),
        }
        let line = rec.position().map_or(0, |p| p.line());
        let id = rec.get(id_col).unwrap_or("").trim();
        if id.is_empty() {
            return Err(malformed(path, line, "HashFunction", "empty"));
        }
        if let Some(app) = app_col.and_then(|c| rec.get(c)).map(str::trim)
            && !app.is_empty()
            && !apps.contains_key(id)
        {
            apps.insert(id.to_string(), app.to_string());
        }
        if let Some(t) = trigger_col.and_then(|c| rec.get(c)).map(str::trim)
            && !t.is_empty()
        {
            triggers.insert(id.to_string(), t.eq_ignore_ascii_case("timer"));
        }
        let i = *index.entry(id.to_string()).or_insert_with(|| {
            functions.push(FunctionTrace {
                id: id.to_string(),
                active: Vec::new(),
                duration_ms: DEFAULT_DURATION_MS,
                memory_mb: DEFAULT_MEMORY_MB,
                duration_percentiles: None,
                timer: false,
            });
            functions.len() - 1
        });
        for (k, &c) in minute_cols.iter().enumerate() {
            let cell = rec.get(c).unwrap_or("").trim();
            let n: u32 = cell.parse().map_err(|_| {
                malformed(
                    path,
                    line,
                    &headers[c],
                    format!("`{cell}` is not a whole number of invocations"),
                )
            })?;
            if n > 0 {
                functions[i].active.push(((offset + k) as u32, n));
            }
        }
    }
    Ok(minute_cols.len())
}

/// Reads `key -> value` from a CSV with those two named columns.
fn read_keyed(path: &Path, key: &str, value: &str) -> Result<Vec<(String, f64)>, TraceError> {
    Ok(read_columns(path, key, &[value])?
        .into_iter()
        .map(|(k, v)| (k, v[0]))
        .collect())
}

/// Reads `key -> [values]` from a CSV with those named columns, each value a
/// non-negative number.
fn read_columns(
    path: &Path,
    key: &str,
    values: &[&str],
) -> Result<Vec<(String, Vec<f64>)>, TraceError> {
    let mut csv = Csv::open(path)?;
    let k = csv.col(key)?;
    let cols = values
        .iter()
        .map(|v| csv.col(v))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for rec in csv.rdr.records() {
        let rec = rec.map_err(|e| csv_error(path, e))?;
        let line = rec.position().map_or(0, |p| p.line());
        let mut row = Vec::with_capacity(cols.len());
        for (&c, name) in cols.iter().zip(values) {
            let cell = rec.get(c).unwrap_or("").trim();
            let x: f64 = cell
                .parse()
                .ok()
                .filter(|x: &f64| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| {
                    malformed(
                        path,
                        line,
                        *name,
                        format!("`{cell}` is not a non-negative number"),
                    )
                })?;
            row.push(x);
        }
        out.push((rec.get(k).unwrap_or("").trim().to_string(), row));
    }
    Ok(out)
}

/// The percentile columns of an Azure 2019 durations file, at
/// [`DURATION_PERCENTILES`].
const DURATION_COLUMNS: [&str; 7] = [
    "percentile_Average_0",
    "percentile_Average_1",
    "percentile_Average_25",
    "percentile_Average_50",
    "percentile_Average_75",
    "percentile_Average_99",
    "percentile_Average_100",
];

/// The cumulative probabilities of [`FunctionTrace::duration_percentiles`].
pub const DURATION_PERCENTILES: [f64; 7] = [0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0];

/// A durations row: the function, its mean, its percentiles if given.
type DurationRow = (String, f64, Option<[f64; 7]>);

/// Each function's mean duration and, when the file has the columns (files
/// with only `Average` give none), its percentiles, in one pass. A row whose
/// percentiles decrease is an error: it cannot be a distribution.
fn read_durations(path: &Path) -> Result<Vec<DurationRow>, TraceError> {
    let has = Csv::open(path)?
        .headers
        .iter()
        .any(|h| h == DURATION_COLUMNS[6]);
    let mut cols = vec!["Average"];
    if has {
        cols.extend(DURATION_COLUMNS);
    }
    read_columns(path, "HashFunction", &cols)?
        .into_iter()
        .map(|(id, v)| {
            let Ok(q) = <[f64; 7]>::try_from(&v[1..]) else {
                return Ok((id, v[0], None));
            };
            if q.windows(2).any(|w| w[1] < w[0]) {
                return Err(malformed(
                    path,
                    0,
                    "percentile_Average_*",
                    format!("{id}: percentiles {q:?} decrease"),
                ));
            }
            Ok((id, v[0], Some(q)))
        })
        .collect()
}

/// One invocation of the Azure 2021 trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// `app/func` (function names are unique only within an app).
    pub function: String,
    /// Start, ms from the trace's start (end minus duration).
    pub start_ms: u64,
    /// Duration, ms.
    pub duration_ms: u64,
}

/// Reads the Azure 2021 per-invocation trace (`app,func,end_timestamp,duration`,
/// seconds), sorted by start.
pub fn read_azure2021(path: &Path) -> Result<Vec<Invocation>, TraceError> {
    let mut csv = Csv::open(path)?;
    let (app, func, end, dur) = (
        csv.col("app")?,
        csv.col("func")?,
        csv.col("end_timestamp")?,
        csv.col("duration")?,
    );
    let mut out = Vec::new();
    for rec in csv.rdr.records() {
        let rec = rec.map_err(|e| csv_error(path, e))?;
        let line = rec.position().map_or(0, |p| p.line());
        let num = |c: usize, name: &str| {
            let cell = rec.get(c).unwrap_or("").trim();
            cell.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| {
                    malformed(
                        path,
                        line,
                        name,
                        format!("`{cell}` is not a non-negative number of seconds"),
                    )
                })
        };
        let (end_s, dur_s) = (num(end, "end_timestamp")?, num(dur, "duration")?);
        let end_ms = (end_s * 1_000.0).round() as u64;
        let duration_ms = (dur_s * 1_000.0).round() as u64;
        out.push(Invocation {
            function: format!(
                "{}/{}",
                rec.get(app).unwrap_or(""),
                rec.get(func).unwrap_or("")
            ),
            start_ms: end_ms.saturating_sub(duration_ms),
            duration_ms,
        });
    }
    out.sort_by(|a, b| {
        a.start_ms
            .cmp(&b.start_ms)
            .then_with(|| a.function.cmp(&b.function))
    });
    Ok(out)
}

/// Turns per-invocation records into the per-minute form (for the
/// forecaster), with each function's mean duration.
pub fn bin_invocations(invocations: &[Invocation]) -> Trace {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut functions: Vec<FunctionTrace> = Vec::new();
    let mut totals: Vec<(u64, u64)> = Vec::new();
    let mut minutes = 0;
    for inv in invocations {
        let i = *index.entry(&inv.function).or_insert_with(|| {
            functions.push(FunctionTrace {
                id: inv.function.clone(),
                active: Vec::new(),
                duration_ms: DEFAULT_DURATION_MS,
                memory_mb: DEFAULT_MEMORY_MB,
                duration_percentiles: None,
                timer: false,
            });
            totals.push((0, 0));
            functions.len() - 1
        });
        let m = (inv.start_ms / 60_000) as u32;
        minutes = minutes.max(m as usize + 1);
        match functions[i].active.last_mut() {
            Some((last, n)) if *last == m => *n += 1,
            _ => functions[i].active.push((m, 1)),
        }
        totals[i].0 += inv.duration_ms;
        totals[i].1 += 1;
    }
    for (f, (ms, n)) in functions.iter_mut().zip(totals) {
        f.duration_ms = (ms as f64 / n.max(1) as f64).max(1.0);
        f.timer = looks_periodic(&f.active);
    }
    Trace { functions, minutes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("forewarm-trace-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn timers_come_from_the_trigger_column_or_strict_periodicity() {
        let d = tmp("timers");
        let row = |id: &str, trigger: Option<&str>, counts: &[u32]| {
            let cells: Vec<String> = counts.iter().map(u32::to_string).collect();
            match trigger {
                Some(t) => format!("{id},o,a,{t},{}\n", cells.join(",")),
                None => format!("{id},o,a,{}\n", cells.join(",")),
            }
        };
        let every5: Vec<u32> = (0..30).map(|m| u32::from(m % 5 == 0)).collect();
        let busy: Vec<u32> = (0..30).map(|m| 3 + m % 4).collect();
        let minutes: Vec<String> = (1..=30).map(|m| format!("minute_{m}")).collect();
        let with = write(
            &d,
            "invocations.csv",
            &format!(
                "HashFunction,HashOwner,HashApp,Trigger,{}\n{}{}",
                minutes.join(","),
                row("t", Some("timer"), &busy),
                row("h", Some("http"), &every5),
            ),
        );
        let t = read_azure2019(&[with]).unwrap();
        assert_eq!(
            (t.functions[0].timer, t.functions[1].timer),
            (true, false),
            "the column says so, whatever the minutes look like"
        );
        let without = d.join("bare");
        std::fs::create_dir_all(&without).unwrap();
        let p = write(
            &without,
            "invocations.csv",
            &format!(
                "HashFunction,HashOwner,HashApp,{}\n{}{}",
                minutes.join(","),
                row("p", None, &every5),
                row("b", None, &busy),
            ),
        );
        let t = read_azure2019(&[p]).unwrap();
        assert_eq!(
            (t.functions[0].timer, t.functions[1].timer),
            (true, false),
            "every 5 minutes, one call: a timer; every minute, varying: not"
        );
    }

    #[test]
    fn duration_percentiles_are_read_and_checked() {
        let d = tmp("percentiles");
        let inv = write(
            &d,
            "invocations.csv",
            "HashFunction,HashOwner,HashApp,minute_1\nf1,f1,f1,1\nf2,f2,f2,1\n",
        );
        let head = "HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,\
                    percentile_Average_0,percentile_Average_1,percentile_Average_25,\
                    percentile_Average_50,percentile_Average_75,percentile_Average_99,\
                    percentile_Average_100";
        write(
            &d,
            "durations.csv",
            &format!("{head}\nf1,f1,f1,287,9,42,38909,42,46,78,109,204,1358,38909\n"),
        );
        let t = read_azure2019(std::slice::from_ref(&inv)).unwrap();
        assert_eq!(
            t.functions[0].duration_percentiles,
            Some([42.0, 46.0, 78.0, 109.0, 204.0, 1_358.0, 38_909.0])
        );
        assert_eq!(
            t.functions[1].duration_percentiles, None,
            "no row: exponential"
        );
        write(
            &d,
            "durations.csv",
            &format!("{head}\nf1,f1,f1,287,9,42,38909,42,46,78,109,20,1358,38909\n"),
        );
        let e = read_azure2019(&[inv]).unwrap_err().to_string();
        assert!(e.contains("f1") && e.contains("decrease"), "{e}");
    }

    #[test]
    fn memory_is_joined_by_app_when_hashes_differ() {
        // Upstream files: owner, app and function hashes all differ, and the
        // memory file knows apps only. Two functions of one app share it.
        let d = tmp("apps");
        let inv = write(
            &d,
            "invocations.csv",
            "HashFunction,HashOwner,HashApp,minute_1\nfa,own,app1,1\nfb,own,app1,2\nfc,own,app2,3\n",
        );
        write(
            &d,
            "memory.csv",
            "HashOwner,HashApp,SampleCount,AverageAllocatedMb\nown,app1,10,512\nown,fa,10,64\n",
        );
        let t = read_azure2019(&[inv]).unwrap();
        let mb: Vec<u32> = t.functions.iter().map(|f| f.memory_mb).collect();
        assert_eq!(
            mb,
            vec![512, 512, DEFAULT_MEMORY_MB],
            "fa's own hash is not its app"
        );
    }

    #[test]
    fn reads_days_durations_and_memory() {
        let d = tmp("ok");
        let inv = write(
            &d,
            "invocations.csv",
            "HashFunction,HashOwner,HashApp,minute_1,minute_2,minute_3\nf1,f1,f1,0,3,0\nf2,f2,f2,1,0,0\n",
        );
        write(
            &d,
            "durations.csv",
            "HashOwner,HashApp,HashFunction,Average,Count\nf1,f1,f1,30000,3\n",
        );
        write(
            &d,
            "memory.csv",
            "HashOwner,HashApp,SampleCount,AverageAllocatedMb\nf2,f2,10,300.4\n",
        );
        let day2 = write(
            &d,
            "day2.csv",
            "HashFunction,HashOwner,HashApp,minute_1,minute_2,minute_3\nf2,f2,f2,0,0,7\n",
        );
        let t = read_azure2019(&[inv, day2]).unwrap();
        assert_eq!(t.minutes, 6);
        assert_eq!(t.functions[0].active, vec![(1, 3)]);
        assert_eq!(t.functions[0].duration_ms, 30_000.0);
        assert_eq!(
            t.functions[0].concurrency(3),
            2.0,
            "3 calls of 30 s in a minute"
        );
        assert_eq!(t.functions[1].active, vec![(0, 1), (5, 7)]);
        assert_eq!(t.functions[1].memory_mb, 300);
        assert_eq!(t.functions[1].duration_ms, DEFAULT_DURATION_MS);
        assert_eq!(
            t.repeated(2).functions[1].active,
            vec![(0, 1), (5, 7), (6, 1), (11, 7)]
        );
    }

    #[test]
    fn malformed_rows_name_file_line_and_field() {
        let d = tmp("bad");
        let inv = write(
            &d,
            "x.csv",
            "HashFunction,minute_1,minute_2\nf1,0,1\nf2,zz,1\n",
        );
        let e = read_azure2019(&[inv]).unwrap_err().to_string();
        assert!(e.contains("x.csv:3: minute_1: `zz`"), "{e}");
        let short = write(&d, "y.csv", "HashFunction,minute_1,minute_2\nf1,0\n");
        let e = read_azure2019(&[short]).unwrap_err().to_string();
        assert!(e.contains("y.csv:2") && e.contains("2 fields"), "{e}");
        let wrong = write(&d, "z.csv", "a,b\n1,2\n");
        assert!(
            read_azure2019(&[wrong])
                .unwrap_err()
                .to_string()
                .contains("HashFunction")
        );
        let missing = read_azure2019(&[d.join("nope.csv")])
            .unwrap_err()
            .to_string();
        assert!(missing.contains("nope.csv"), "{missing}");
    }

    #[test]
    fn reads_the_2021_format_sorted_by_start() {
        let d = tmp("2021");
        let p = write(
            &d,
            "a.csv",
            "app,func,end_timestamp,duration\na,f,130.5,0.5\na,f,10.0,1.0\nb,f,61.0,2.0\n",
        );
        let inv = read_azure2021(&p).unwrap();
        assert_eq!(
            inv.iter().map(|i| i.start_ms).collect::<Vec<_>>(),
            vec![9_000, 59_000, 130_000]
        );
        let t = bin_invocations(&inv);
        assert_eq!(t.functions.len(), 2);
        assert_eq!(t.functions[0].active, vec![(0, 1), (2, 1)]);
        assert_eq!(
            read_any(std::slice::from_ref(&p)).unwrap(),
            t,
            "told apart by its header"
        );
        let bad = write(&d, "b.csv", "app,func,end_timestamp,duration\na,f,-1,0.5\n");
        assert!(
            read_azure2021(&bad)
                .unwrap_err()
                .to_string()
                .contains("b.csv:2: end_timestamp")
        );
    }
}
