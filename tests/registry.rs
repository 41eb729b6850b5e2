//! The registry engine: user-defined queries from the config, a diagnostic
//! that overruns its deadline failing alone while the others keep
//! publishing, and overrides.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestDb, fast_settings};
use tokio_util::sync::CancellationToken;
use windsock::config::Settings;
use windsock::db::Dialect;
use windsock::diagnostics;
use windsock::metrics::{Exposition, Store};
use windsock::runner::TargetRunner;

fn settings(toml: &str) -> Settings {
    let dir = std::env::temp_dir().join(format!("windsock-registry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!(
        "{:x}.toml",
        toml.len() * 31 + toml.bytes().map(usize::from).sum::<usize>()
    ));
    std::fs::write(&path, toml).unwrap();
    Settings::load(Some(&path)).unwrap()
}

fn runner(db: &TestDb, s: &Settings, store: &Arc<Store>) -> TargetRunner {
    TargetRunner {
        environment: "t".into(),
        db: db.windsock(&fast_settings()),
        plan: Arc::new(diagnostics::registry(s).unwrap()),
        store: store.clone(),
        settings: s.collection.clone(),
        limits: Arc::new(windsock::metrics::limits::Limits::new(&s.cardinality)),
    }
}

const QUERIES: &str = r#"
[collection]
startup_jitter = "0s"

[[queries]]
name = "pools_by_size"
help = "Pools and their sizes, as a user-defined query"
interval = "1s"
sql = "SELECT pool, slots, CASE WHEN slots > 10 THEN 'big' ELSE 'small' END AS size FROM slot_pool"
[[queries.metrics]]
name = "custom_pool_slots"
key_labels = ["pool", "size"]
values = ["slots"]
static_labels = { team = "platform" }

[[queries]]
name = "slow"
interval = "1s"
timeout = "1s"
[queries.sql]
postgres = "SELECT 1 AS one FROM pg_sleep(10)"
[[queries.metrics]]
name = "custom_slow"
values = ["one"]
"#;

/// A slow diagnostic fails by timeout, alone; the rest keep publishing.
#[tokio::test(flavor = "multi_thread")]
async fn slow_diagnostic_fails_alone() {
    let db = TestDb::with_schema(Dialect::Postgres, "3.1.8").await;
    db.exec_script("INSERT INTO slot_pool (pool, slots, description, include_deferred) VALUES ('default_pool', 128, 'd', false), ('tiny', 2, 't', false)").await;
    let s = settings(QUERIES);
    let store = Arc::new(Store::new(["t"]));
    let r = runner(&db, &s, &store);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(r.run(cancel.clone()));
    // Long enough for the slow query to time out at least once while the
    // 1-second custom query runs several times.
    tokio::time::sleep(Duration::from_secs(5)).await;
    cancel.cancel();
    task.await.unwrap();

    let t = store.target("t").unwrap();
    let slow = &t.diagnostics["slow"];
    assert!(!slow.success);
    assert!(
        slow.errors.get("timeout").copied().unwrap_or(0) >= 1,
        "{slow:?}"
    );
    let pools = &t.diagnostics["pools_by_size"];
    assert!(pools.success && pools.runs >= 2, "{pools:?}");
    assert!(t.diagnostics["dag_states"].success);
    let text = Exposition::new(store).classic();
    assert!(
        text.contains(
            "custom_pool_slots{environment=\"t\",pool=\"tiny\",size=\"small\",team=\"platform\"} 2"
        ),
        "{text}"
    );
    assert!(text.contains("custom_pool_slots{environment=\"t\",pool=\"default_pool\",size=\"big\",team=\"platform\"} 128"));
    assert!(!text.contains("custom_slow{"));
}

/// Per-dialect SQL: a target whose dialect has none skips the query.
#[tokio::test]
async fn query_without_sql_for_the_dialect_is_skipped() {
    let db = TestDb::with_schema(Dialect::Sqlite, "3.1.8").await;
    let s = settings(QUERIES);
    let store = Arc::new(Store::new(["t"]));
    let r = runner(&db, &s, &store);
    let schema = r.detect().await.unwrap();
    let slow = r
        .plan
        .iter()
        .find(|p| p.diagnostic.meta().name == "slow")
        .unwrap();
    match r.run_one(slow, &schema).await {
        windsock::runner::RunResult::Skipped(why) => assert_eq!(why, "not available on sqlite"),
        other => panic!("{other:?}"),
    }
}

/// Overrides change the schedule or disable a diagnostic; an unknown name
/// is a config error.
#[test]
fn overrides() {
    let s = settings(
        "[diagnostics.overrides.dag_sizes]\nenabled = false\n\n[diagnostics.overrides.zombie_tasks]\ninterval = \"5s\"\ntimeout = \"2s\"\n",
    );
    let plan = diagnostics::registry(&s).unwrap();
    assert!(!plan.iter().any(|p| p.diagnostic.meta().name == "dag_sizes"));
    let z = plan
        .iter()
        .find(|p| p.diagnostic.meta().name == "zombie_tasks")
        .unwrap();
    assert_eq!(
        (z.interval, z.timeout),
        (Duration::from_secs(5), Duration::from_secs(2))
    );
    let bad = settings("[diagnostics.overrides.no_such_thing]\nenabled = false\n");
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("diagnostics.overrides.no_such_thing"), "{err}");
}

/// Bad user-defined queries are rejected at start-up, naming the query.
#[test]
fn bad_queries_name_the_query() {
    let base = "[[queries]]\nname = \"q1\"\nsql = \"SELECT 1 AS v\"\n";
    let cases = [
        (
            "[[queries.metrics]]\nname = \"bad name\"\nvalues = [\"v\"]\n",
            "not a valid metric name",
        ),
        (
            "[[queries.metrics]]\nname = \"m\"\nvalues = [\"a\", \"b\"]\n",
            "value_label",
        ),
        (
            "[[queries.metrics]]\nname = \"m\"\ntype = \"histogram\"\nvalues = [\"v\"]\n",
            "not gauge or counter",
        ),
        (
            "[[queries.metrics]]\nname = \"m_total\"\ntype = \"counter\"\nvalues = [\"v\"]\n",
            "without `_total`",
        ),
        (
            "[[queries.metrics]]\nname = \"m\"\nvalues = [\"v\"]\nkey_labels = [\"environment\"]\n",
            "environment is reserved",
        ),
        (
            "[[queries.metrics]]\nname = \"airflow_dags\"\nvalues = [\"v\"]\n",
            "produced by two diagnostics",
        ),
    ];
    for (metric, needle) in cases {
        let err = settings(&format!("{base}{metric}"))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("queries[0]") && err.contains("q1"), "{err}");
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

/// Owners are exported only when enabled, as an info metric.
#[tokio::test]
async fn owners_only_when_enabled() {
    let plan = diagnostics::registry(&Settings::default()).unwrap();
    assert!(
        !plan
            .iter()
            .any(|p| p.diagnostic.meta().name == "dag_owners")
    );
    let s = settings("[diagnostics.overrides.dag_owners]\nenabled = true\n");
    let dir = std::env::temp_dir().join(format!("windsock-owners-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("demo.db");
    windsock::demo::create(&path, 1).await.unwrap();
    let store = Arc::new(Store::new(["t"]));
    let r = TargetRunner {
        environment: "t".into(),
        db: windsock::db::Db::new(&windsock::db::url::DbUrl::sqlite_file(&path), &s.database)
            .unwrap(),
        plan: Arc::new(diagnostics::registry(&s).unwrap()),
        store: store.clone(),
        settings: s.collection.clone(),
        limits: Arc::new(windsock::metrics::limits::Limits::default()),
    };
    let schema = r.detect().await.unwrap();
    let p = r
        .plan
        .iter()
        .find(|p| p.diagnostic.meta().name == "dag_owners")
        .unwrap();
    assert!(matches!(
        r.run_one(p, &schema).await,
        windsock::runner::RunResult::Ok(_)
    ));
    let text = Exposition::new(store.clone()).openmetrics();
    assert!(
        text.contains(
            "airflow_dag_owner_info{environment=\"t\",dag_id=\"train_model_eu\",owners=\"ml\"} 1"
        ),
        "{text}"
    );
    // Stale DAGs are left out.
    assert!(!text.contains("dag_id=\"audit_access_apac\""), "{text}");
    r.db.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
