//! `docs/metrics.md` is generated from the registry and must match it; and
//! every metric family a real scrape shows is documented.

use std::path::PathBuf;

fn docs_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md")
}

#[test]
fn metrics_doc_is_current() {
    let rendered = windsock::docs::metrics_markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(docs_path(), &rendered).unwrap();
    }
    let committed = std::fs::read_to_string(docs_path()).unwrap_or_default();
    assert!(
        committed == rendered,
        "docs/metrics.md is out of date: run `UPDATE_DOCS=1 cargo test --test docs`"
    );
}

/// Every `# TYPE` in a scrape of the demo DB is in the docs.
#[tokio::test]
async fn every_exported_family_is_documented() {
    let dir = std::env::temp_dir().join(format!("windsock-docs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("demo.db");
    windsock::demo::create(&path, 7).await.unwrap();
    let url = windsock::db::url::DbUrl::sqlite_file(&path);
    let db = windsock::db::Db::new(&url, &windsock::config::DatabaseSettings::default()).unwrap();
    let store = std::sync::Arc::new(windsock::metrics::Store::new(["demo"]));
    let runner = windsock::runner::TargetRunner {
        environment: "demo".into(),
        db,
        plan: std::sync::Arc::new(
            windsock::diagnostics::registry(&windsock::config::Settings::default()).unwrap(),
        ),
        store: store.clone(),
        settings: windsock::config::CollectionSettings::default(),
        limits: std::sync::Arc::new(windsock::metrics::limits::Limits::default()),
    };
    let schema = runner.detect().await.unwrap();
    for p in runner.plan.iter() {
        let res = runner.run_one(p, &schema).await;
        assert!(
            matches!(
                res,
                windsock::runner::RunResult::Ok(_) | windsock::runner::RunResult::Skipped(_)
            ),
            "{}: {res:?}",
            p.diagnostic.meta().name
        );
    }
    store.fail("demo", "dag_states", "timeout", 1.0);
    let text = windsock::metrics::Exposition::new(store).classic();
    let docs = std::fs::read_to_string(docs_path()).unwrap();
    let mut n = 0;
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap();
        assert!(
            docs.contains(&format!("`{name}`")),
            "{name} is not in docs/metrics.md"
        );
        n += 1;
    }
    assert!(n >= 30, "only {n} families exported");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Names windsock exports: registry metrics and self-metrics, as exposed.
fn exported_names() -> Vec<String> {
    let ctx = std::sync::Arc::new(windsock::diagnostics::Context::default());
    let mut names: Vec<String> = windsock::diagnostics::builtin(&ctx)
        .iter()
        .flat_map(|d| d.metrics().to_vec())
        .map(|m| windsock::docs::exposed_name(&m.name, m.kind))
        .collect();
    names.extend(
        windsock::metrics::SELF_METRICS
            .iter()
            .map(|m| windsock::docs::exposed_name(m.name, m.kind)),
    );
    names
}

/// No name collides with a peer tool's, and prefixes follow the policy.
#[test]
fn names_do_not_collide_with_peers() {
    let list = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/peer_metric_names.txt"),
    )
    .unwrap();
    let peers: std::collections::HashSet<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(peers.len() > 100);
    // The process metrics every Prometheus client exports, under the names
    // every client uses.
    const PROCESS: [&str; 6] = [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_start_time_seconds",
        "process_open_fds",
        "process_max_fds",
    ];
    for name in exported_names() {
        if PROCESS.contains(&name.as_str()) {
            continue;
        }
        let base = name.trim_end_matches("_total").trim_end_matches("_info");
        assert!(
            !peers.contains(name.as_str()) && !peers.contains(base),
            "{name} is used by a peer tool"
        );
        assert!(
            name.starts_with("airflow_") || name.starts_with("windsock_"),
            "{name}: metrics start with airflow_ (from Airflow's DB) or windsock_ (self)"
        );
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{name}: snake_case only"
        );
    }
}

/// The table of the original's 38 queries names only exported metrics.
#[test]
fn original_query_mapping_is_complete_and_real() {
    let names = exported_names();
    let mapping = windsock::docs::ORIGINAL_QUERIES;
    assert_eq!(mapping.len(), 38);
    for (i, (n, _, metrics, _)) in mapping.iter().enumerate() {
        assert_eq!(usize::from(*n), i + 1);
        for m in metrics.split(", ") {
            assert!(
                names.iter().any(|e| e == m),
                "query {n}: {m} is not exported"
            );
        }
    }
}

/// The per-version notes name only exported metrics.
#[test]
fn version_notes_name_real_metrics() {
    let names = exported_names();
    for (metric, _) in windsock::docs::VERSION_NOTES {
        assert!(
            names.iter().any(|e| e == metric),
            "{metric} is not exported"
        );
    }
}
