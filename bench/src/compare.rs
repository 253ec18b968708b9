//! `scanlogin-bench compare FILE...`: the runs of a baseline build and a new
//! build side by side. Reads JSON lines (the tool's output, as
//! `scripts/bench.sh` appends them), groups them by their `side`
//! (`baseline` or `new`; lines with another side are skipped), and prints
//! for each figure the median and the spread (min-max) of each side and the
//! ratio of the medians, new / baseline, as a Markdown table.

use std::path::PathBuf;

use anyhow::{Context, ensure};
use serde_json::Value;

/// Options of `scanlogin-bench compare`.
#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// Files of JSON lines, one run each line.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// How a figure is shown.
#[derive(Clone, Copy)]
enum Unit {
    /// A whole number (µs, bytes, counts).
    Count,
    /// Microseconds shown as milliseconds.
    MsFromUs,
    /// A number with two decimals (cores, percent).
    Decimal,
}

/// The figures compared: name, JSON pointer, unit.
const FIGURES: [(&str, &str, Unit); 20] = [
    (
        "hub CPU per complete login (µs)",
        "/logins/hub_cpu_us_per_login",
        Unit::Count,
    ),
    (
        "hub CPU per full login (µs)",
        "/full/hub_cpu_us_per_login",
        Unit::Count,
    ),
    (
        "hub CPU per OIDC login (µs)",
        "/oidc/hub_cpu_us_per_login",
        Unit::Count,
    ),
    (
        "hub CPU per confirm (µs)",
        "/confirm/hub_cpu_us_per_confirm",
        Unit::Count,
    ),
    (
        "confirm -> push p50 (ms)",
        "/confirm/push/p50_us",
        Unit::MsFromUs,
    ),
    (
        "confirm -> push p99 (ms)",
        "/confirm/push/p99_us",
        Unit::MsFromUs,
    ),
    (
        "confirm -> push p99.9 (ms)",
        "/confirm/push/p999_us",
        Unit::MsFromUs,
    ),
    ("errors: confirms", "/confirm/errors", Unit::Count),
    ("errors: complete logins", "/logins/errors", Unit::Count),
    ("errors: full logins", "/full/errors", Unit::Count),
    ("errors: OIDC logins", "/oidc/errors", Unit::Count),
    (
        "idle hub CPU, N waiting sockets (% of a core)",
        "/idle/hub_cpu_pct_of_one_core",
        Unit::Decimal,
    ),
    (
        "memory per waiting browser (B)",
        "/memory/bytes_per_waiting_browser",
        Unit::Count,
    ),
    (
        "hub cores busy: confirms",
        "/confirm/hub_cores_busy",
        Unit::Decimal,
    ),
    (
        "hub cores busy: complete logins",
        "/logins/hub_cores_busy",
        Unit::Decimal,
    ),
    (
        "hub cores busy: full logins",
        "/full/hub_cores_busy",
        Unit::Decimal,
    ),
    (
        "hub cores busy: OIDC logins",
        "/oidc/hub_cores_busy",
        Unit::Decimal,
    ),
    ("complete logins per second", "/logins/per_sec", Unit::Count),
    ("full logins per second", "/full/per_sec", Unit::Count),
    ("OIDC logins per second", "/oidc/per_sec", Unit::Count),
];

/// Median, min and max of some values.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

fn spread(values: &[f64]) -> Option<Spread> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[n - 1],
    })
}

fn show(x: f64, unit: Unit) -> String {
    match unit {
        Unit::Count => format!("{x:.0}"),
        Unit::MsFromUs => format!("{:.3}", x / 1000.0),
        Unit::Decimal => format!("{x:.2}"),
    }
}

fn cell(s: Option<Spread>, runs: usize, unit: Unit) -> String {
    match s {
        None => "-".to_owned(),
        Some(s) if runs == 1 => show(s.median, unit),
        Some(s) => format!(
            "{} ({}–{})",
            show(s.median, unit),
            show(s.min, unit),
            show(s.max, unit)
        ),
    }
}

/// new / baseline of the medians, `×0.25`; `-` when undefined.
fn ratio(base: Option<Spread>, new: Option<Spread>) -> String {
    match (base, new) {
        (Some(b), Some(n)) if b.median != 0.0 => format!("×{:.2}", n.median / b.median),
        (Some(b), Some(n)) if b.median == 0.0 && n.median == 0.0 => "=".to_owned(),
        _ => "-".to_owned(),
    }
}

/// The table for these runs.
fn table(base: &[Value], new: &[Value]) -> String {
    let values = |runs: &[Value], ptr: &str| -> Vec<f64> {
        runs.iter()
            .filter_map(|r| r.pointer(ptr).and_then(Value::as_f64))
            .collect()
    };
    let mut t = format!(
        "| figure | baseline, median (min–max) of {} | new, median (min–max) of {} | new / baseline |\n|---|---|---|---|\n",
        base.len(),
        new.len()
    );
    for (name, ptr, unit) in FIGURES {
        let (b, n) = (values(base, ptr), values(new, ptr));
        if b.is_empty() && n.is_empty() {
            continue;
        }
        let (sb, sn) = (spread(&b), spread(&n));
        t += &format!(
            "| {name} | {} | {} | {} |\n",
            cell(sb, b.len(), unit),
            cell(sn, n.len(), unit),
            ratio(sb, sn)
        );
    }
    t
}

/// The sizes of the runs, and a warning when they differ.
fn params_note(runs: &[Value]) -> String {
    let mut seen: Vec<&Value> = Vec::new();
    for r in runs {
        if !seen.contains(&&r["params"]) {
            seen.push(&r["params"]);
        }
    }
    match seen.as_slice() {
        [one] => format!("sizes: {one}\n"),
        _ => format!(
            "WARNING: the runs had different sizes: {}\n",
            seen.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(" / ")
        ),
    }
}

/// Reads the files, prints the table on stdout.
pub fn run(args: &CompareArgs) -> anyhow::Result<()> {
    let (mut base, mut new) = (Vec::new(), Vec::new());
    for path in &args.files {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
            match v["side"].as_str() {
                Some("baseline") => base.push(v),
                Some("new") => new.push(v),
                _ => {}
            }
        }
    }
    ensure!(
        !base.is_empty() && !new.is_empty(),
        "compare: need runs with side \"baseline\" and side \"new\" (found {} and {})",
        base.len(),
        new.len()
    );
    let all: Vec<Value> = base.iter().chain(&new).cloned().collect();
    print!("{}{}", params_note(&all), table(&base, &new));
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn medians_and_spreads() {
        let s = spread(&[3.0, 1.0, 2.0]).expect("spread");
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0]).expect("even").median, 2.5);
        assert_eq!(spread(&[]), None);
    }

    #[test]
    fn ratios_of_medians() {
        let at = |m| {
            Some(Spread {
                median: m,
                min: m,
                max: m,
            })
        };
        assert_eq!(ratio(at(2000.0), at(500.0)), "×0.25");
        assert_eq!(ratio(at(0.0), at(0.0)), "=");
        assert_eq!(ratio(at(0.0), at(3.0)), "-");
        assert_eq!(ratio(None, at(3.0)), "-");
    }

    #[test]
    fn table_rows_show_each_side() {
        let run = |cpu: f64, p99: f64| {
            json!({"side": "x", "logins": {"hub_cpu_us_per_login": cpu, "errors": 0},
                "confirm": {"push": {"p99_us": p99}}})
        };
        let base = [
            run(2000.0, 3000.0),
            run(2400.0, 5000.0),
            run(2200.0, 4000.0),
        ];
        let new = [run(500.0, 1000.0), run(600.0, 1200.0), run(550.0, 1100.0)];
        let t = table(&base, &new);
        assert!(
            t.contains(
                "| hub CPU per complete login (µs) | 2200 (2000–2400) | 550 (500–600) | ×0.25 |"
            ),
            "{t}"
        );
        assert!(
            t.contains(
                "| confirm -> push p99 (ms) | 4.000 (3.000–5.000) | 1.100 (1.000–1.200) | ×0.28 |"
            ),
            "{t}"
        );
        assert!(
            t.contains("| errors: complete logins | 0 (0–0) | 0 (0–0) | = |"),
            "{t}"
        );
        // Figures no run has are left out.
        assert!(!t.contains("OIDC"), "{t}");
    }
}
