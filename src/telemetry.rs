//! Logging setup and the Prometheus metrics.
//!
//! Metrics live in a [`Metrics`] value owned by one `App`, not in a global registry, so
//! two apps in one test process count separately.

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

/// The counters and gauges of CONTRACT.md §6.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Which path served a joiner's history: `source="store"` or `source="cache"`.
    pub history_loads: IntCounterVec,
    /// Messages stored (resends of a stored message are not counted again).
    pub messages: IntCounter,
    pub rate_limited: IntCounter,
    /// Open WebSocket connections on this process.
    pub ws_connections: IntGauge,
    /// Rooms with at least one member connected to this process.
    pub rooms_active: IntGauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let history_loads = IntCounterVec::new(
            Opts::new(
                "natter_history_loads_total",
                "Histories served on join, by source",
            ),
            &["source"],
        )
        .expect("valid metric");
        let messages =
            IntCounter::new("natter_messages_total", "Messages stored").expect("valid metric");
        let rate_limited = IntCounter::new(
            "natter_rate_limited_total",
            "Sends refused by the rate limiter",
        )
        .expect("valid metric");
        let ws_connections = IntGauge::new("natter_ws_connections", "Open WebSocket connections")
            .expect("valid metric");
        let rooms_active =
            IntGauge::new("natter_rooms_active", "Rooms with members on this process")
                .expect("valid metric");
        for source in ["store", "cache"] {
            history_loads.with_label_values(&[source]);
        }
        for collector in [
            Box::new(history_loads.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(messages.clone()),
            Box::new(rate_limited.clone()),
            Box::new(ws_connections.clone()),
            Box::new(rooms_active.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Metrics {
            registry,
            history_loads,
            messages,
            rate_limited,
            ws_connections,
            rooms_active,
        }
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
