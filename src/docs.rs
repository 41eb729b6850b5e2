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

/// Unit of a metric, from its name (Prometheus base units in the suffix).
fn unit(name: &str) -> &'static str {
    if name.ends_with("_timestamp_seconds") {
        "UNIX seconds"
    } else if name.ends_with("_seconds") {
        "seconds"
    } else if name.ends_with("_bytes") {
        "bytes"
    } else if name.ends_with("_ratio") {
        "ratio 0-1"
    } else {
        "count"
    }
}

/// What a metric means on each Airflow version and dialect, where that
/// differs. Every metric named here must exist (checked by `tests/docs.rs`).
pub const VERSION_NOTES: &[(&str, &str)] = &[
    (
        "airflow_dags",
        "stale: `dag.is_active = false` on Airflow 2, `dag.is_stale = true` on Airflow 3",
    ),
    (
        "airflow_serialized_dag_stored_bytes",
        "the bytes Airflow stored: the JSON text of `data` (the text `null` when compressing on SQLite) plus the zlib stream of `data_compressed`, the same measure on every dialect (not PostgreSQL's TOAST size); Airflow 3: the DAG's latest version (`dag_version`); reported once the payload was read (at most 200 new or changed DAGs per run)",
    ),
    (
        "airflow_task_failed_tries_window",
        "per task instance (map indexes summed): Airflow 2.7-2.9 `task_fail` rows; 2.10 both `task_fail` and the failed `task_instance_history` rows plus a failed final try, the larger count (2.10 records some failures in one table only); Airflow 3 `task_instance_history` plus a failed final try",
    ),
    (
        "airflow_task_retries_window",
        "tries that followed a failed try, from the same sources; bumps of `try_number` by clears or by the scheduler adopting orphaned tasks are not retries",
    ),
    (
        "airflow_dag_run_schedule_delay_window_seconds",
        "scheduled runs with `clear_number = 0` only, as Airflow's own `dagrun.schedule_delay` (Airflow 2.7 has no `clear_number`: every scheduled run counts)",
    ),
    (
        "airflow_task_duration_window_seconds",
        "end minus start of each successful try, else `task_instance.duration` (Airflow 3 on SQLite writes wrong durations: doubled, or negative when a try crosses a minute; on MySQL/MariaDB the column is a single-precision FLOAT)",
    ),
    (
        "airflow_task_backlog_oldest_age_seconds",
        "queued tasks from `queued_dttm`; scheduled tasks from `scheduled_dttm` (Airflow 3) or `updated_at` (Airflow 2, the last state change)",
    ),
    (
        "airflow_zombie_task_candidates",
        "Airflow 3: `task_instance.last_heartbeat_at` older than the threshold; Airflow 2: the task's LocalTaskJob (`task_instance.job_id`) not running or its heartbeat older",
    ),
    (
        "airflow_dag_max_active_runs_blocked",
        "every version: Airflow sets `next_dagrun_create_after` to NULL while a DAG has max_active_runs runs active",
    ),
    (
        "airflow_sla_miss_events",
        "Airflow 2 only (`sla_miss`); Airflow 3 removed SLAs and a table left by an upgrade is ignored; `[[deadlines]]` work on every version",
    ),
    (
        "airflow_db_table_bytes",
        "heap: the table with its out-of-line values (PostgreSQL `pg_table_size`: TOAST, free-space and visibility maps; InnoDB `data_length`: the clustered index with off-page BLOBs; SQLite `dbstat` pages, overflow included); index: PostgreSQL `pg_indexes_size` (primary key included), InnoDB `index_length` (secondary indexes), SQLite index pages",
    ),
    (
        "airflow_db_table_rows_estimate",
        "PostgreSQL `n_live_tup`, InnoDB `table_rows` (an estimate); not on SQLite",
    ),
    (
        "airflow_db_oldest_transaction_age_seconds",
        "PostgreSQL `xact_start` of other sessions on the database; MySQL/MariaDB `INNODB_TRX.trx_started`, which is in the server's system time zone, against the system clock; not on SQLite",
    ),
    (
        "airflow_db_connections",
        "PostgreSQL `pg_stat_activity` states (other users' sessions need `pg_read_all_stats`); MySQL/MariaDB `PROCESSLIST`: `Sleep` with an open InnoDB transaction is idle_in_transaction; not on SQLite",
    ),
];

/// The original toolbox's 38 diagnostic queries and what replaces each.
/// Every metric named here must exist (checked by `tests/docs.rs`).
pub const ORIGINAL_QUERIES: &[(u8, &str, &str, &str)] = &[
    (
        1,
        "serialized DAG analysis",
        "airflow_serialized_dag_stored_bytes, airflow_serialized_dag_json_bytes, airflow_serialized_dag_compressed, airflow_dag_tasks, airflow_operator_tasks",
        "compressed DAGs included; stored bytes measured, not a re-serialization",
    ),
    (
        2,
        "DAG performance",
        "airflow_dag_run_success_ratio, airflow_dag_run_outcomes, airflow_dag_run_duration_window_seconds",
        "running and queued runs excluded from the ratio",
    ),
    (
        3,
        "task failures",
        "airflow_task_failed_tries_window",
        "every failed try, on every version (task_fail or task_instance_history)",
    ),
    (
        4,
        "serialization instability",
        "airflow_dag_serialization_changes_total",
        "hash changes seen by windsock; works on Airflow 2, where one row per DAG made the original's query always empty",
    ),
    (
        5,
        "hourly traffic",
        "airflow_dag_run_completions_total, airflow_task_instance_completions_total",
        "rate() per hour in Prometheus; peaks from its history",
    ),
    (
        6,
        "concurrent DAG runs",
        "airflow_concurrency_peak",
        "from start/end timestamps, no range self-join",
    ),
    (
        7,
        "DAG run frequency and variance",
        "airflow_dag_run_outcomes, airflow_dag_run_duration_window_seconds",
        "",
    ),
    (
        8,
        "table sizes",
        "airflow_db_table_bytes",
        "heap and index apart (the original's index size included TOAST)",
    ),
    (
        9,
        "row counts",
        "airflow_db_table_rows_estimate",
        "catalog estimates: no COUNT(*) of big tables",
    ),
    (
        10,
        "index usage",
        "airflow_db_index_scans, airflow_db_index_bytes",
        "PostgreSQL",
    ),
    (11, "lock contention", "airflow_db_lock_waiters", ""),
    (
        12,
        "connection statistics",
        "airflow_db_connections, airflow_db_oldest_transaction_age_seconds",
        "no meaningless ratio to one process's pool size",
    ),
    (
        13,
        "growth rate",
        "airflow_db_table_max_id, airflow_db_table_rows_estimate",
        "rate()/deriv() in Prometheus; the original failed on every Airflow >= 2.2",
    ),
    (
        14,
        "task duration trends",
        "airflow_task_duration_window_seconds, airflow_dag_run_duration_trend_ratio",
        "",
    ),
    (
        15,
        "retry patterns",
        "airflow_task_retries_window, airflow_task_retry_success_ratio",
        "tries, not task instance rows",
    ),
    (
        16,
        "queue depth",
        "airflow_task_backlog, airflow_task_instances",
        "current counts; their history is Prometheus' (the original passed current state off as history)",
    ),
    (
        17,
        "executor queue lag",
        "airflow_task_queue_wait_window_seconds",
        "",
    ),
    (
        18,
        "pool utilization",
        "airflow_pool_capacity_slots, airflow_pool_task_slots, airflow_pool_free_slots",
        "as Airflow computes open slots",
    ),
    (
        19,
        "zombie tasks",
        "airflow_zombie_task_candidates, airflow_zombie_task_heartbeat_age_seconds",
        "Airflow's heartbeat rule, not a hard-coded 6 h start age",
    ),
    (
        20,
        "SLA misses",
        "airflow_sla_miss_events, airflow_sla_miss_latest_timestamp_seconds, airflow_deadline_missed",
        "Airflow 2 SLAs, and windsock deadlines on every version",
    ),
    (
        21,
        "execution time variance",
        "airflow_task_duration_window_seconds",
        "stat=\"stddev\"",
    ),
    (
        22,
        "schedule drift",
        "airflow_dag_run_schedule_delay_window_seconds",
        "from the end of the data interval, not its start",
    ),
    (
        23,
        "catch-up backlog",
        "airflow_dag_runs, airflow_dag_schedule_overdue_seconds",
        "",
    ),
    (
        24,
        "scheduling delay",
        "airflow_dag_run_schedule_delay_window_seconds",
        "the same signal as 22, once",
    ),
    (
        25,
        "failure prediction",
        "airflow_task_failed_tries_window",
        "trends with predict_linear() over the stored series",
    ),
    (
        26,
        "capacity forecasting",
        "airflow_task_instance_completions_total, airflow_db_table_max_id",
        "predict_linear() in Prometheus",
    ),
    (
        27,
        "performance degradation",
        "airflow_dag_run_duration_trend_ratio",
        "works with any window (the original needed 3 weeks in a 7-day window)",
    ),
    (
        28,
        "anomaly detection",
        "airflow_task_duration_window_seconds",
        "z-scores over the stored series in PromQL",
    ),
    (
        29,
        "seasonal patterns",
        "airflow_dag_run_completions_total",
        "by hour and weekday from Prometheus' history",
    ),
    (
        30,
        "scheduler heartbeat",
        "airflow_component_heartbeat_age_seconds, airflow_components_alive",
        "heartbeat age per live job, not gaps between job rows",
    ),
    (
        31,
        "scheduler loop duration",
        "airflow_component_heartbeat_age_seconds",
        "the loop time is not in the DB (StatsD has it); heartbeat age shows a stalled loop",
    ),
    (
        32,
        "queued task duration",
        "airflow_task_queue_wait_window_seconds, airflow_task_backlog_oldest_age_seconds",
        "",
    ),
    (
        33,
        "error clustering",
        "airflow_task_failed_tries_window",
        "the DB holds no error text; failures per task",
    ),
    (
        34,
        "error correlation",
        "airflow_dag_run_failure_cascades_window",
        "co-failures in a run, no O(n^2) self-join",
    ),
    (
        35,
        "transient vs persistent",
        "airflow_task_retry_success_ratio",
        "",
    ),
    (
        36,
        "error time patterns",
        "airflow_task_instance_completions_total",
        "state=\"failed\" by hour in Prometheus",
    ),
    (
        37,
        "failure cascades",
        "airflow_dag_run_failure_cascades_window",
        "",
    ),
    (
        38,
        "task concurrency",
        "airflow_concurrency_peak",
        "kind=\"task_instances\", from timestamps, not current state",
    ),
];

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
         appear in a diagnostic's result are dropped. `*_window` metrics cover \
         `diagnostics.window` (7 days by default).\n\n\
         ## Diagnostics\n\n\
         | diagnostic | category | interval | needs | reads | cost per run |\n\
         |---|---|---|---|---|---|\n",
    );
    let list = diagnostics::builtin(&std::sync::Arc::new(diagnostics::Context::default()));
    for d in &list {
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
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            meta.name,
            meta.category.as_str(),
            humantime::format_duration(meta.interval),
            needs,
            meta.source,
            meta.cost
        );
    }
    out.push_str(
        "\nDialect limits: `db_indexes` runs on PostgreSQL only, `db_activity` on PostgreSQL and \
         MySQL/MariaDB; `sla_misses` on Airflow 2 only. `dag_owners` is off unless enabled \
         (`[diagnostics.overrides.dag_owners] enabled = true`).\n\n\
         ## Airflow metrics\n\n\
         | metric | type | unit | labels | meaning | diagnostic |\n\
         |---|---|---|---|---|---|\n",
    );
    for d in &list {
        for m in d.metrics() {
            let mut labels = vec!["environment".to_owned()];
            labels.extend(m.label_names());
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | `{}` |",
                exposed_name(&m.name, m.kind),
                kind_str(m.kind),
                unit(&m.name),
                labels.join(", "),
                m.help,
                d.meta().name,
            );
        }
    }
    out.push_str(
        "\n## By version and dialect\n\n\
         Where a metric's source differs between Airflow versions or databases. \
         Value tests on databases real Airflow 2.10 and 3.1 wrote on PostgreSQL, MariaDB \
         and SQLite hold each diagnostic to these definitions (`tests/values/`).\n\n\
         | metric | per version and dialect |\n|---|---|\n",
    );
    for (metric, note) in VERSION_NOTES {
        let _ = writeln!(out, "| `{metric}` | {note} |");
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
    out.push_str(
        "\n## The original toolbox's 38 queries\n\n\
         What replaces each diagnostic query of the original DAG (numbering of its \
         `DiagnosticQueries` registry).\n\n\
         | # | original query | windsock metrics | note |\n|---|---|---|---|\n",
    );
    for (n, what, metrics, note) in ORIGINAL_QUERIES {
        let names: Vec<String> = metrics.split(", ").map(|m| format!("`{m}`")).collect();
        let _ = writeln!(out, "| {n} | {what} | {} | {note} |", names.join(", "));
    }
    out
}
