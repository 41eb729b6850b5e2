//! Generated reference documentation (`docs/metrics.md`).
//!
//! The file is rendered from the registry and the self-metric table, and a
//! test fails when the committed file differs (`UPDATE_DOCS=1 cargo test
//! --test docs` rewrites it), so the docs cannot drift from the code.

use std::fmt::Write as _;

use crate::diagnostics::{self, MetricKind};
use crate::metrics::SELF_METRICS;

/// The name a metric is exposed under (counters end in `_total`, info
/// metrics in `_info`).
pub fn exposed_name(name: &str, kind: MetricKind) -> String {
    match kind {
        MetricKind::Gauge => name.to_owned(),
        MetricKind::Counter => format!("{name}_total"),
        MetricKind::Info => format!("{name}_info"),
    }
}

fn kind_str(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Gauge => "gauge",
        MetricKind::Counter => "counter",
        MetricKind::Info => "info",
    }
}

/// Renders `docs/metrics.md`.
pub fn metrics_markdown() -> String {
    let mut out = String::new();
    out.push_str(
        "# Metrics reference\n\n\
         <!-- Generated from the diagnostics registry by src/docs.rs; do not edit.\n     \
         Regenerate with: UPDATE_DOCS=1 cargo test --test docs -->\n\n\
         Every series carries `environment` (the target's name from the config). Values are \
         served from memory: each diagnostic refreshes its families on its own interval, and a \
         failed run keeps the last good values (see `windsock_diagnostic_success` and \
         `windsock_diagnostic_last_success_timestamp_seconds`). Series whose labels no longer \
         appear in a diagnostic's result are dropped.\n\n\
         ## Airflow metrics\n\n\
         | metric | type | labels | meaning | diagnostic (interval) | needs |\n\
         |---|---|---|---|---|---|\n",
    );
    for d in diagnostics::builtin(&std::sync::Arc::new(diagnostics::Context::default())) {
        let meta = d.meta();
        let needs = if meta.requires.is_empty() {
            "all versions".to_owned()
        } else {
            meta.requires
                .iter()
                .map(|c| c.describe())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for m in d.metrics() {
            let mut labels = vec!["environment".to_owned()];
            labels.extend(m.label_names());
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | `{}` ({}) | {} |",
                exposed_name(&m.name, m.kind),
                kind_str(m.kind),
                labels.join(", "),
                m.help,
                meta.name,
                humantime::format_duration(meta.interval),
                needs
            );
        }
    }
    out.push_str(
        "\n## windsock's own metrics\n\n\
         | metric | type | labels | meaning |\n|---|---|---|---|\n",
    );
    for m in SELF_METRICS {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            exposed_name(m.name, m.kind),
            kind_str(m.kind),
            m.labels.join(", "),
            m.help
        );
    }
    out
}
