//! `summary FILE`: a markdown table per scenario from the JSON lines of several runs
//! (one column per `label`), with each label's ratio to the baseline's figure.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;

#[derive(Args, Debug)]
pub struct SummaryArgs {
    /// File of JSON lines written by the scenarios (`--label` tells the runs apart).
    pub results: PathBuf,
    /// Label of the runs the others are divided by.
    #[arg(long, default_value = "baseline")]
    pub baseline: String,
}

/// (scenario, row title, JSON pointer, scale, decimals). An object (error counts) is
/// summed.
const METRICS: &[(&str, &str, &str, f64, usize)] = &[
    ("fanout", "deliveries/s", "/deliveries_per_s", 1.0, 0),
    (
        "fanout",
        "delivered fraction",
        "/delivered_fraction",
        1.0,
        4,
    ),
    (
        "fanout",
        "send→receive p50 (ms)",
        "/latency_us/p50",
        0.001,
        2,
    ),
    (
        "fanout",
        "send→receive p99 (ms)",
        "/latency_us/p99",
        0.001,
        2,
    ),
    (
        "fanout",
        "send→receive p99.9 (ms)",
        "/latency_us/p999",
        0.001,
        2,
    ),
    (
        "fanout",
        "send→receive max (ms)",
        "/latency_us/max",
        0.001,
        2,
    ),
    (
        "fanout",
        "send→ack p99 (ms)",
        "/ack_latency_us/p99",
        0.001,
        2,
    ),
    ("fanout", "error frames", "/errors", 1.0, 0),
    ("fanout", "resyncs", "/resyncs", 1.0, 0),
    (
        "changes",
        "message deliveries/s",
        "/message_deliveries_per_s",
        1.0,
        0,
    ),
    (
        "changes",
        "message p50 (ms)",
        "/message_latency_us/p50",
        0.001,
        2,
    ),
    (
        "changes",
        "message p99 (ms)",
        "/message_latency_us/p99",
        0.001,
        2,
    ),
    (
        "changes",
        "message p99.9 (ms)",
        "/message_latency_us/p999",
        0.001,
        2,
    ),
    (
        "changes",
        "message max (ms)",
        "/message_latency_us/max",
        0.001,
        2,
    ),
    (
        "changes",
        "message_updated deliveries/s",
        "/updated_deliveries_per_s",
        1.0,
        0,
    ),
    (
        "changes",
        "message_updated p50 (ms)",
        "/updated_latency_us/p50",
        0.001,
        2,
    ),
    (
        "changes",
        "message_updated p99 (ms)",
        "/updated_latency_us/p99",
        0.001,
        2,
    ),
    (
        "changes",
        "message_updated p99.9 (ms)",
        "/updated_latency_us/p999",
        0.001,
        2,
    ),
    (
        "changes",
        "message_updated max (ms)",
        "/updated_latency_us/max",
        0.001,
        2,
    ),
    ("changes", "changes acked", "/changes_acked", 1.0, 0),
    ("changes", "error frames", "/errors", 1.0, 0),
    ("changes", "resyncs", "/resyncs", 1.0, 0),
    ("changes", "updates missing", "/updates_missing", 1.0, 0),
    (
        "changes",
        "updates duplicated",
        "/updates_duplicated",
        1.0,
        0,
    ),
    (
        "changes",
        "revs not increasing",
        "/rev_not_increasing",
        1.0,
        0,
    ),
    (
        "idle",
        "KiB per joined socket (server RSS)",
        "/kib_per_socket",
        1.0,
        1,
    ),
    ("idle", "joins/s while opening", "/joins_per_s", 1.0, 0),
    ("idle", "sockets without pong", "/no_pong", 1.0, 0),
    ("join-storm", "join p50 (ms)", "/join_us/p50", 0.001, 1),
    ("join-storm", "join p99 (ms)", "/join_us/p99", 0.001, 1),
    ("join-storm", "join max (ms)", "/join_us/max", 0.001, 1),
    ("join-storm", "total (ms)", "/total_ms", 1.0, 1),
    ("join-storm", "incomplete", "/incomplete", 1.0, 0),
    ("join-storm", "failed", "/failed", 1.0, 0),
    ("send-storm", "acked/s", "/acked_per_s", 1.0, 1),
    (
        "send-storm",
        "send→ack p50 (ms)",
        "/ack_latency_us/p50",
        0.001,
        2,
    ),
    (
        "send-storm",
        "send→ack p99 (ms)",
        "/ack_latency_us/p99",
        0.001,
        2,
    ),
    (
        "send-storm",
        "send→ack max (ms)",
        "/ack_latency_us/max",
        0.001,
        2,
    ),
    ("send-storm", "error frames", "/errors", 1.0, 0),
    ("send-storm", "missing from store", "/missing", 1.0, 0),
    (
        "room-list",
        "GET /api/rooms p50 (ms)",
        "/api_rooms_us/p50",
        0.001,
        2,
    ),
    (
        "room-list",
        "GET /api/rooms p99 (ms)",
        "/api_rooms_us/p99",
        0.001,
        2,
    ),
    (
        "room-list",
        "GET /api/rooms?member=true p50 (ms)",
        "/api_rooms_member_us/p50",
        0.001,
        2,
    ),
    (
        "room-list",
        "GET /api/rooms?member=true p99 (ms)",
        "/api_rooms_member_us/p99",
        0.001,
        2,
    ),
    (
        "room-list",
        "GET / (page) p50 (ms)",
        "/browse_page_us/p50",
        0.001,
        2,
    ),
    (
        "room-list",
        "GET / (page) p99 (ms)",
        "/browse_page_us/p99",
        0.001,
        2,
    ),
    (
        "room-list",
        "GET /rooms/{slug} (page) p50 (ms)",
        "/room_page_us/p50",
        0.001,
        2,
    ),
    (
        "room-list",
        "GET /rooms/{slug} (page) p99 (ms)",
        "/room_page_us/p99",
        0.001,
        2,
    ),
    ("room-list", "failed requests", "/failed_requests", 1.0, 0),
];

/// The sizes shown in each scenario's heading.
const SIZES: &[(&str, &[&str])] = &[
    ("fanout", &["rooms", "members", "duration_s"]),
    ("changes", &["rooms", "members", "duration_s"]),
    ("idle", &["sockets", "users", "rooms", "history"]),
    ("join-storm", &["joiners", "seeded"]),
    ("send-storm", &["rooms", "senders", "duration_s"]),
    ("room-list", &["rooms", "member_of", "requests_each"]),
];

pub fn run(a: SummaryArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.results)
        .with_context(|| format!("reading {}", a.results.display()))?;
    // scenario → label → the last run's JSON; labels in order of appearance.
    let mut runs: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let mut labels: Vec<String> = Vec::new();
    for line in text.lines().filter(|l| l.trim_start().starts_with('{')) {
        let v: Value =
            serde_json::from_str(line).with_context(|| format!("bad JSON line: {line}"))?;
        let (Some(scenario), label) = (
            v.get("scenario").and_then(Value::as_str),
            v.get("label")
                .and_then(Value::as_str)
                .unwrap_or("unlabelled"),
        ) else {
            continue;
        };
        if !labels.iter().any(|l| l == label) {
            labels.push(label.to_owned());
        }
        runs.entry(scenario.to_owned())
            .or_default()
            .insert(label.to_owned(), v);
    }
    let others: Vec<&String> = labels.iter().filter(|l| **l != a.baseline).collect();
    for (scenario, sizes) in SIZES {
        let Some(by_label) = runs.get(*scenario) else {
            continue;
        };
        let cols: Vec<&String> = labels
            .iter()
            .filter(|l| by_label.contains_key(*l))
            .collect();
        let base = by_label.get(&a.baseline);
        let ratio_cols: Vec<&&String> = if base.is_some() {
            others
                .iter()
                .filter(|l| by_label.contains_key(**l))
                .collect()
        } else {
            Vec::new()
        };
        // Sizes from the first non-baseline run (the baseline seeds no history).
        let first = cols
            .iter()
            .find(|c| ***c != a.baseline)
            .or(cols.first())
            .map(|c| &by_label[*c])
            .expect("non-empty");
        let size: Vec<String> = sizes
            .iter()
            .filter_map(|k| first.get(*k).map(|v| format!("{k}={v}")))
            .collect();
        println!("\n### {scenario} ({})\n", size.join(", "));
        let mut head = vec!["metric".to_owned()];
        head.extend(cols.iter().map(|c| c.to_string()));
        head.extend(ratio_cols.iter().map(|c| format!("{c} ÷ {}", a.baseline)));
        println!("| {} |", head.join(" | "));
        println!("|{}", " --- |".repeat(head.len()));
        for (_, title, pointer, scale, decimals) in METRICS.iter().filter(|m| m.0 == *scenario) {
            let mut row = vec![title.to_string()];
            for c in &cols {
                row.push(match metric(&by_label[*c], pointer) {
                    Some(v) => format!("{:.decimals$}", v * scale),
                    None => "—".to_owned(),
                });
            }
            for c in &ratio_cols {
                let r = match (
                    metric(&by_label[**c], pointer),
                    base.and_then(|b| metric(b, pointer)),
                ) {
                    (Some(x), Some(b)) if b != 0.0 => format!("{:.2}", x / b),
                    _ => "—".to_owned(),
                };
                row.push(r);
            }
            println!("| {} |", row.join(" | "));
        }
        for c in &cols {
            if let Some(why) = by_label[*c].get("skipped").and_then(Value::as_str) {
                println!("\n**{c}: skipped** ({why})");
            }
        }
        for c in &cols {
            if let Some(f) = by_label[*c].get("failed_checks") {
                println!("\n**{c}: failed checks** {f}");
            }
        }
    }
    Ok(())
}

fn metric(v: &Value, pointer: &str) -> Option<f64> {
    match v.pointer(pointer)? {
        Value::Object(counts) => Some(
            counts
                .values()
                .filter_map(Value::as_f64)
                .fold(0.0, |a, b| a + b),
        ),
        other => other.as_f64(),
    }
}
