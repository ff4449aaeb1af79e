//! Results: latency histograms, the human table (stderr) and the JSON line (stdout).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::setup::Ctx;

/// Latencies in microseconds (1 µs … 1 hour, 3 significant digits).
pub struct Latency(Histogram<u64>);

impl Latency {
    pub fn new() -> Latency {
        Latency(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"))
    }

    pub fn record_us(&mut self, us: u64) {
        self.0.saturating_record(us.max(1));
    }

    pub fn record(&mut self, d: Duration) {
        self.record_us(d.as_micros() as u64);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    fn json(&self) -> Value {
        if self.0.is_empty() {
            return json!({"count": 0});
        }
        let h = &self.0;
        json!({
            "count": h.len(),
            "p50": h.value_at_quantile(0.50),
            "p99": h.value_at_quantile(0.99),
            "p999": h.value_at_quantile(0.999),
            "max": h.max(),
            "mean": h.mean().round() as u64,
        })
    }

    fn human(&self) -> String {
        if self.0.is_empty() {
            return "-".to_owned();
        }
        let h = &self.0;
        format!(
            "p50 {}  p99 {}  p99.9 {}  max {}  (n={})",
            ms(h.value_at_quantile(0.50)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max()),
            h.len()
        )
    }
}

fn ms(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.0} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} ms", us as f64 / 1000.0)
    }
}

/// Latencies collected as plain numbers by each socket task, merged at the end (cheaper
/// than a histogram per socket).
pub fn merge_us(samples: impl IntoIterator<Item = u32>) -> Latency {
    let mut lat = Latency::new();
    for us in samples {
        lat.record_us(u64::from(us));
    }
    lat
}

/// One scenario's result, filled in order: each entry is a table row and a JSON field.
pub struct Report {
    scenario: &'static str,
    rows: Vec<(String, String)>,
    /// In insertion order (`scenario` first), unlike a `serde_json::Map`.
    json: Vec<(String, Value)>,
    /// Checks that must hold (e.g. no incomplete history); a failed one makes the exit
    /// status 3.
    failures: Vec<String>,
}

impl Report {
    pub fn new(scenario: &'static str, ctx: &Ctx) -> Report {
        let mut r = Report {
            scenario,
            rows: Vec::new(),
            json: vec![("scenario".to_owned(), json!(scenario))],
            failures: Vec::new(),
        };
        if let Some(label) = &ctx.label {
            r.field("label", json!(label), label.clone());
        }
        let targets = ctx.target_list();
        r.field("targets", json!(targets), targets.join(", "));
        r
    }

    /// A field with its own human rendering.
    pub fn field(&mut self, key: &str, value: Value, human: String) -> &mut Report {
        self.rows.push((key.to_owned(), human));
        self.json.push((key.to_owned(), value));
        self
    }

    pub fn int(&mut self, key: &str, v: u64) -> &mut Report {
        self.field(key, json!(v), group_digits(v))
    }

    pub fn float(&mut self, key: &str, v: f64, decimals: usize) -> &mut Report {
        let rounded = (v * 10f64.powi(decimals as i32)).round() / 10f64.powi(decimals as i32);
        self.field(key, json!(rounded), format!("{v:.decimals$}"))
    }

    pub fn text(&mut self, key: &str, v: &str) -> &mut Report {
        self.field(key, json!(v), v.to_owned())
    }

    pub fn latency(&mut self, key: &str, lat: &Latency) -> &mut Report {
        self.field(key, lat.json(), lat.human())
    }

    pub fn counts(&mut self, key: &str, counts: &BTreeMap<String, u64>) -> &mut Report {
        let human = if counts.is_empty() {
            "none".to_owned()
        } else {
            counts
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        self.field(key, json!(counts), human)
    }

    /// Records a failed check when `bad` is non-zero.
    pub fn must_be_zero(&mut self, what: &str, bad: u64) -> &mut Report {
        if bad > 0 {
            self.failures.push(format!("{what}: {bad} (must be 0)"));
        }
        self
    }

    /// The table on stderr (unless `--json-only`), the JSON line on stdout (with
    /// `"ok"` and the failed checks); returns whether every check held.
    pub fn print(&mut self, json_only: bool) -> bool {
        let ok = self.failures.is_empty();
        self.json.push(("ok".to_owned(), json!(ok)));
        if !ok {
            self.json
                .push(("failed_checks".to_owned(), json!(self.failures)));
        }
        if !json_only {
            let width = self.rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "\n== {} ==", self.scenario);
            for (k, v) in &self.rows {
                let _ = writeln!(err, "  {k:<width$}  {v}");
            }
            for f in &self.failures {
                let _ = writeln!(err, "  CHECK FAILED: {f}");
            }
            let _ = writeln!(err);
        }
        let mut out = std::io::stdout().lock();
        let fields: Vec<String> = self
            .json
            .iter()
            .map(|(k, v)| format!("{}:{v}", json!(k)))
            .collect();
        let _ = writeln!(out, "{{{}}}", fields.join(","));
        let _ = out.flush();
        ok
    }
}

fn group_digits(v: u64) -> String {
    let digits = v.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| std::str::from_utf8(g).expect("ASCII digits"))
        .collect();
    groups.join(",")
}

/// Progress lines on stderr, silenced by `--json-only`.
pub fn progress(ctx: &Ctx, line: impl std::fmt::Display) {
    if !ctx.json_only {
        eprintln!("[natter-bench] {line}");
    }
}

/// Adds `add` into `into` (error codes by count).
pub fn add_counts(into: &mut BTreeMap<String, u64>, add: &BTreeMap<String, u64>) {
    for (k, v) in add {
        *into.entry(k.clone()).or_default() += v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(40884123), "40,884,123");
    }

    #[test]
    fn percentiles() {
        let lat = merge_us(1..=1000);
        let v = lat.json();
        assert_eq!(v["count"], 1000);
        assert_eq!(v["p50"], 500);
        assert_eq!(v["max"], 1000);
    }
}
