//! Through a real PgBouncer (Debian's), as Airflow's Helm chart and
//! Astronomer deploy it in front of the metadata DB: in transaction and in
//! session pooling mode, every diagnostic runs and reports what it reports
//! on a direct connection, reads stay read-only, admin writes commit, and
//! the leader lock of one replica holds while other clients share the
//! pooler's few server connections.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{PgBouncer, TestDb, fast_settings};
use windsock::config::Settings;
use windsock::db::lock::Leader;
use windsock::db::url::DbUrl;
use windsock::db::write::WriteDb;
use windsock::db::{Db, Dialect};
use windsock::diagnostics;
use windsock::metrics::Store;
use windsock::runner::{RunResult, TargetRunner};

const T: Duration = Duration::from_secs(10);

fn runner(db: Db) -> TargetRunner {
    let mut s = Settings::default();
    s.diagnostics.window = Duration::from_secs(10 * 365 * 86_400);
    TargetRunner {
        environment: "t".into(),
        db,
        plan: Arc::new(diagnostics::registry(&s).unwrap()),
        store: Arc::new(Store::new(["t"])),
        settings: s.collection.clone(),
        limits: Arc::new(windsock::metrics::limits::Limits::default()),
    }
}

/// Every diagnostic once; the samples of those whose values do not move
/// between two runs a moment apart.
async fn collect(r: &TargetRunner) -> std::collections::HashMap<String, f64> {
    let schema = r.detect().await.unwrap();
    let mut out = std::collections::HashMap::new();
    for p in r.plan.iter() {
        let name = p.diagnostic.meta().name.to_string();
        match r.run_one(p, &schema).await {
            RunResult::Ok(o) => {
                if !name.starts_with("db_") {
                    out.extend(common::sample_map(&o.families));
                }
            }
            RunResult::Skipped(_) => {}
            RunResult::Failed(e) => panic!("{name}: {e}"),
        }
    }
    out
}

/// Real Airflow 3.1 data behind PgBouncer in each pool mode: the same
/// values as directly, `windsock check` exits 0, and a write through the
/// diagnostics session is refused.
#[tokio::test(flavor = "multi_thread")]
async fn diagnostics_work_through_pgbouncer_in_both_pool_modes() {
    let db = TestDb::with_data(Dialect::Postgres, "3.1.8").await;
    let direct = collect(&runner(db.windsock(&fast_settings()))).await;
    // Transaction mode shares two server connections among windsock's
    // three; session mode needs one per client connection.
    for (mode, servers) in [("transaction", 2), ("session", 4)] {
        let bouncer = PgBouncer::start(mode, servers);
        let url = bouncer.url(&db);
        let handle = Db::new(&DbUrl::parse(&url).unwrap(), &fast_settings()).unwrap();
        let through = collect(&runner(handle.clone())).await;
        assert_eq!(through, direct, "{mode}");
        let err = handle
            .query("UPDATE slot_pool SET slots = 7", T)
            .await
            .expect_err("a write went through");
        assert!(err.to_string().contains("read-only"), "{mode}: {err}");
        handle.close().await;
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_windsock"))
            .args(["check", "--db-url", &url])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{mode}:\n{text}");
        assert!(!text.contains("FAILED"), "{mode}:\n{text}");
    }
}

/// Admin writes (one transaction, read-write explicitly) commit through
/// PgBouncer in transaction mode.
#[tokio::test]
async fn admin_writes_commit_through_pgbouncer() {
    let db = TestDb::with_data(Dialect::Postgres, "3.1.8").await;
    let bouncer = PgBouncer::start("transaction", 2);
    let w = WriteDb::new(&DbUrl::parse(&bouncer.url(&db)).unwrap(), &fast_settings()).unwrap();
    let mut tx = w.begin().await.unwrap();
    let n = tx
        .execute(
            "UPDATE ab_user SET first_name = ? WHERE username = ?",
            &["Pooled".into(), "domain/alice".into()],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    tx.commit().await.unwrap();
    w.close().await;
    assert_eq!(
        db.text_rows("SELECT first_name FROM ab_user WHERE username = 'domain/alice'")
            .await,
        vec![vec![Some("Pooled".to_owned())]]
    );
}

/// One replica leads: behind a transaction pooler with two server
/// connections, a second replica cannot take the lock while other clients
/// keep the pool busy, the lock is visible on the server, the leader's
/// open transaction holds no snapshot back from vacuum, and after release
/// the other replica leads.
#[tokio::test(flavor = "multi_thread")]
async fn leader_lock_holds_behind_a_transaction_pooler() {
    let db = TestDb::with_schema(Dialect::Postgres, "3.1.8").await;
    let bouncer = PgBouncer::start("transaction", 2);
    let url = DbUrl::parse(&bouncer.url(&db)).unwrap();
    let s = fast_settings();
    let mut a = Leader::try_acquire(&url, &s, "windsock.test")
        .await
        .unwrap()
        .expect("first replica leads");
    let busy = Db::new(&url, &s).unwrap();
    for _ in 0..20 {
        busy.query("SELECT COUNT(*) FROM dag_run", T).await.unwrap();
        assert!(
            Leader::try_acquire(&url, &s, "windsock.test")
                .await
                .unwrap()
                .is_none(),
            "two leaders"
        );
    }
    assert!(a.still_held().await);
    let rows = db
        .text_rows(
            "SELECT COUNT(*)::text, MAX(backend_xmin::text) FROM pg_locks l \
             JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'windsock-lock'",
        )
        .await;
    assert_eq!(rows, vec![vec![Some("1".to_owned()), None]]);
    a.release().await;
    let b = Leader::try_acquire(&url, &s, "windsock.test")
        .await
        .unwrap();
    assert!(b.is_some(), "the lock was released");
    b.unwrap().release().await;
    busy.close().await;
}
