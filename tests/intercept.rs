//! Interception of new users on real PostgreSQL, MariaDB and SQLite with
//! the Airflow 3.1.8 schema and the users real Airflow created: the rule
//! pipeline (sanitize with collisions, validate, roles by pattern, webhook),
//! idempotence, MWAA-safe refusal, and two replicas acting once.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use common::fab::{add_user, airflow_db};
use common::{TestDb, fast_settings};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use windsock::admin::intercept::{Interceptor, compile};
use windsock::admin::users::UserStore;
use windsock::config::{InterceptSettings, RuleSettings, Settings, Violation};
use windsock::db::Dialect;
use windsock::db::write::WriteDb;
use windsock::metrics::Store;

type Events = Arc<Mutex<Vec<Value>>>;

/// A real HTTP server on loopback that records what the webhook posts.
async fn webhook_sink() -> (String, Events) {
    let events: Events = Arc::default();
    let ev = events.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |axum::Json(v): axum::Json<Value>| {
            let ev = ev.clone();
            async move {
                ev.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook?source=windsock"), events)
}

fn settings(hook: &str, mwaa_safe: bool) -> InterceptSettings {
    let mut rules = Vec::new();
    if !mwaa_safe {
        rules.push(RuleSettings::Sanitize {
            characters: "/".into(),
            replacement: "_".into(),
        });
    }
    rules.extend([
        RuleSettings::Validate {
            pattern: r"^[A-Za-z0-9_.@/-]+$".into(),
            on_violation: Violation::Deactivate,
        },
        RuleSettings::AssignRoles {
            username_pattern: None,
            email_pattern: Some(r"@ops\.example\.com$".into()),
            roles: vec!["Op".into()],
        },
        RuleSettings::Webhook {
            url: hook.into(),
            timeout: Duration::from_secs(5),
            proxy: None,
            ca_file: None,
            secret_file: None,
            secret_env: None,
            retries: 0,
        },
    ]);
    InterceptSettings {
        enabled: true,
        interval: Duration::from_millis(200),
        catch_up: Duration::ZERO,
        postgres_notify: false,
        mwaa_safe,
        rules,
    }
}

fn interceptor(db: &TestDb, s: InterceptSettings, metrics: Arc<Store>) -> Interceptor {
    Interceptor {
        users: Arc::new(UserStore::new(
            WriteDb::new(&db.db_url(), &fast_settings()).unwrap(),
        )),
        url: db.db_url(),
        session_url: db.db_url(),
        database: fast_settings(),
        rules: compile(&s).unwrap(),
        settings: s,
        metrics,
        dry_run: false,
        state: std::sync::Mutex::default(),
    }
}

async fn max_id(db: &TestDb) -> i64 {
    match db.dialect {
        Dialect::Postgres => db.scalar("SELECT MAX(id)::bigint FROM ab_user").await,
        _ => db.scalar("SELECT MAX(id) FROM ab_user").await,
    }
}

async fn user_row(db: &TestDb, id: i64) -> (String, i64, i64) {
    let name_sql = format!("SELECT COUNT(*) FROM ab_user WHERE id = {id} AND active = 1");
    let active = if db.dialect == Dialect::Postgres {
        db.scalar(&name_sql.replace("active = 1", "active")).await
    } else {
        db.scalar(&name_sql).await
    };
    let op = db
        .scalar(&format!(
            "SELECT COUNT(*) FROM ab_user_role ur JOIN ab_role r ON r.id = ur.role_id \
             WHERE ur.user_id = {id} AND r.name = 'Op'"
        ))
        .await;
    let store = UserStore::new(WriteDb::new(&db.db_url(), &fast_settings()).unwrap());
    let mut tx = store.begin().await.unwrap();
    let users = UserStore::created_after(&mut tx, id - 1, 1).await.unwrap();
    tx.rollback().await.unwrap();
    (users[0].username.clone(), active, op)
}

async fn pipeline(dialect: Dialect) {
    let db = airflow_db(dialect, "3.1.8").await;
    let (hook, events) = webhook_sink().await;
    let metrics = Arc::new(Store::new(["t"]));
    add_user(&db, "domain_bob", "bob.old@example.com", "Viewer").await;
    let ic = interceptor(&db, settings(&hook, false), metrics.clone());

    let watermark = ic.take_over().await.unwrap();
    assert_eq!(watermark, max_id(&db).await);
    assert!(
        events.lock().unwrap().is_empty(),
        "catch_up 0: nothing old is touched"
    );

    add_user(&db, "domain/bob", "bob@ops.example.com", "Viewer").await;
    add_user(&db, "Bad Name!", "bad@example.com", "Viewer").await;
    add_user(
        &db,
        "x'; DROP TABLE ab_role; --/y",
        "sql@example.com",
        "Viewer",
    )
    .await;
    let bob = max_id(&db).await - 2;
    let new_mark = ic.poll(watermark).await.unwrap();
    assert_eq!(new_mark, bob + 2);

    // Sanitized with a collision suffix, and given Op by its email.
    let (name, active, op) = user_row(&db, bob).await;
    assert_eq!((name.as_str(), active, op), ("domain_bob_2", 1, 1));
    // Violates the pattern: deactivated, no Op (email does not match).
    let (name, active, op) = user_row(&db, bob + 1).await;
    assert_eq!((name.as_str(), active, op), ("Bad Name!", 0, 0));
    // Injection-shaped: renamed like any other, and ab_role is intact.
    let (name, _, _) = user_row(&db, bob + 2).await;
    assert_eq!(name, "x'; DROP TABLE ab_role; --_y");
    assert_eq!(db.scalar("SELECT COUNT(*) FROM ab_role").await, 5);
    // Webhooks are delivered beside the poll, not by it.
    wait_for("3 webhook events", || events.lock().unwrap().len() >= 3).await;

    {
        let ev = events.lock().unwrap();
        assert_eq!(ev.len(), 3, "{ev:?}");
        assert_eq!(ev[0]["created_as"], "domain/bob");
        assert_eq!(ev[0]["username"], "domain_bob_2");
        let outcomes: Vec<&str> = ev[0]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(outcomes, ["renamed", "roles_added"]);
        assert_eq!(ev[1]["active"], false);
    }

    // Nothing new: a second poll does nothing; looking at a user again
    // changes nothing again (only the webhook is told again).
    assert_eq!(ic.poll(new_mark).await.unwrap(), new_mark);
    assert_eq!(events.lock().unwrap().len(), 3);
    let again = ic.process(bob).await.unwrap();
    let rules: Vec<(&str, &str)> = again.iter().map(|a| (a.rule, a.outcome)).collect();
    assert_eq!(rules, [("webhook", "queued")]);
    assert_eq!(user_row(&db, bob).await.0, "domain_bob_2");
    wait_for("the 4th webhook event", || {
        events.lock().unwrap().len() == 4
    })
    .await;

    let n = |rule, outcome| {
        metrics
            .event(
                "windsock_intercept_actions",
                &[("rule", rule), ("outcome", outcome)],
            )
            .unwrap_or(0.0)
    };
    assert_eq!(n("sanitize", "renamed"), 2.0);
    assert_eq!(n("validate", "deactivated"), 2.0);
    assert_eq!(n("assign_roles", "roles_added"), 1.0);
    wait_for("4 deliveries counted", || n("webhook", "notified") == 4.0).await;
    assert_eq!(n("webhook", "queued"), 4.0);
    assert_eq!(metrics.event("windsock_intercept_users", &[]), Some(4.0));
}

#[tokio::test]
async fn pipeline_postgres() {
    pipeline(Dialect::Postgres).await;
}

#[tokio::test]
async fn pipeline_mysql() {
    pipeline(Dialect::MySql).await;
}

#[tokio::test]
async fn pipeline_sqlite() {
    pipeline(Dialect::Sqlite).await;
}

/// `catch_up` looks again at users created just before windsock started.
#[tokio::test]
async fn catch_up_covers_a_restart() {
    let db = airflow_db(Dialect::Sqlite, "3.1.8").await;
    // The fixture's users predate the restart, however fresh the fixture.
    db.exec_script("UPDATE ab_user SET created_on = '2020-01-01 00:00:00'")
        .await;
    let (hook, events) = webhook_sink().await;
    add_user(&db, "made/while-down", "d@ops.example.com", "Viewer").await;
    let mut s = settings(&hook, false);
    s.catch_up = Duration::from_secs(600);
    let ic = interceptor(&db, s, Arc::new(Store::new(["t"])));
    ic.take_over().await.unwrap();
    wait_for("the webhook", || !events.lock().unwrap().is_empty()).await;
    let ev = events.lock().unwrap();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["username"], "made_while-down");
}

/// MWAA-safe mode (the default) refuses a rename rule, at config time and
/// when compiling the rules.
#[test]
fn mwaa_safe_refuses_the_sanitize_rule() {
    let mut s = settings("http://127.0.0.1:9/h", true);
    s.rules.insert(
        0,
        RuleSettings::Sanitize {
            characters: "/".into(),
            replacement: "_".into(),
        },
    );
    assert!(compile(&s).unwrap_err().contains("mwaa_safe"));

    let dir = std::env::temp_dir().join(format!("ws-mwaa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        "[[targets]]\nurl = \"sqlite:////tmp/x.db\"\n\
         [admin.intercept]\nenabled = true\n\
         [[admin.intercept.rules]]\ntype = \"sanitize\"\n",
    )
    .unwrap();
    let err = Settings::load(Some(&file))
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("admin.intercept.rules[0]") && err.contains("MWAA"),
        "{err}"
    );
    std::fs::write(
        &file,
        "[[targets]]\nurl = \"sqlite:////tmp/x.db\"\n\
         [admin.intercept]\nenabled = true\nmwaa_safe = false\n\
         [[admin.intercept.rules]]\ntype = \"sanitize\"\n",
    )
    .unwrap();
    Settings::load(Some(&file)).unwrap().validate().unwrap();
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A receiver that accepts connections and never answers: the poll does
/// not wait for it (each hook delivers from its own task), so later users'
/// rules run at once; the delivery fails at its timeout and is audited.
#[tokio::test]
async fn a_black_holed_webhook_does_not_delay_the_poll() {
    let db = airflow_db(Dialect::Sqlite, "3.1.8").await;
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", hole.local_addr().unwrap());
    let metrics = Arc::new(Store::new(["t"]));
    let mut s = settings(&url, true);
    if let Some(RuleSettings::Webhook { timeout, .. }) = s.rules.last_mut() {
        *timeout = Duration::from_secs(4);
    }
    let ic = interceptor(&db, s, metrics.clone());
    let mark = ic.take_over().await.unwrap();
    for i in 0..3 {
        add_user(
            &db,
            &format!("hole/{i}"),
            &format!("h{i}@ops.example.com"),
            "Viewer",
        )
        .await;
    }
    let t0 = std::time::Instant::now();
    assert_eq!(ic.poll(mark).await.unwrap(), mark + 3);
    let took = t0.elapsed();
    // Three users, each with a 4s hook: inline calls would take 12s.
    assert!(took < Duration::from_secs(3), "the poll took {took:?}");
    for i in 1..=3 {
        assert_eq!(user_row(&db, mark + i).await.2, 1, "roles assigned at once");
    }
    let failed = || {
        metrics
            .event(
                "windsock_intercept_actions",
                &[("rule", "webhook"), ("outcome", "failed")],
            )
            .unwrap_or(0.0)
    };
    // Deliveries run one after another: 3 x 4s.
    for _ in 0..200 {
        if failed() == 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(failed(), 3.0);
    drop(hole);
}

/// Two replicas on one database: one holds the lock and acts, the other
/// waits; when the first stops, the second takes over.
async fn two_replicas(dialect: Dialect) {
    let db = airflow_db(dialect, "3.1.8").await;
    let (hook, events) = webhook_sink().await;
    let (m1, m2) = (Arc::new(Store::new(["t"])), Arc::new(Store::new(["t"])));
    let (c1, c2) = (CancellationToken::new(), CancellationToken::new());
    let r1 = tokio::spawn(interceptor(&db, settings(&hook, false), m1.clone()).run(c1.clone()));
    let r2 = tokio::spawn(interceptor(&db, settings(&hook, false), m2.clone()).run(c2.clone()));
    let leader = |m: &Store| m.event("windsock_intercept_leader", &[]) == Some(1.0);
    wait_for("a leader", || leader(&m1) || leader(&m2)).await;
    // Both have tried the lock by now (the runs start together).
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(leader(&m1) ^ leader(&m2), "exactly one replica leads");

    add_user(&db, "team/carol", "carol@example.com", "Viewer").await;
    wait_for("the webhook", || !events.lock().unwrap().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(events.lock().unwrap().len(), 1, "one replica acted, once");
    let renamed = |m: &Store| {
        m.event(
            "windsock_intercept_actions",
            &[("rule", "sanitize"), ("outcome", "renamed")],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(renamed(&m1) + renamed(&m2), 1.0);

    // The leader stops; its lock session closes and the other takes over.
    let (first, rest, first_m, rest_m) = if leader(&m1) {
        (c1, c2, m1.clone(), m2.clone())
    } else {
        (c2, c1, m2.clone(), m1.clone())
    };
    first.cancel();
    wait_for("the takeover", || leader(&rest_m)).await;
    assert!(!leader(&first_m));
    add_user(&db, "team/dave", "dave@example.com", "Viewer").await;
    wait_for("the second webhook", || events.lock().unwrap().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let ev = events.lock().unwrap().clone();
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[1]["username"], "team_dave");
    assert_eq!(
        renamed(&rest_m),
        if renamed(&first_m) == 1.0 { 1.0 } else { 2.0 }
    );
    rest.cancel();
    let _ = tokio::join!(r1, r2);
}

#[tokio::test]
async fn two_replicas_act_once_postgres() {
    two_replicas(Dialect::Postgres).await;
}

#[tokio::test]
async fn two_replicas_act_once_mysql() {
    two_replicas(Dialect::MySql).await;
}

/// PostgreSQL with `postgres_notify`: the trigger windsock installs wakes
/// the loop, so a new user is handled long before the next poll.
#[tokio::test]
async fn postgres_notify_handles_new_users_at_once() {
    let db = airflow_db(Dialect::Postgres, "3.1.8").await;
    let (hook, events) = webhook_sink().await;
    let mut s = settings(&hook, false);
    s.interval = Duration::from_secs(60);
    s.postgres_notify = true;
    let metrics = Arc::new(Store::new(["t"]));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(interceptor(&db, s, metrics.clone()).run(cancel.clone()));
    for _ in 0..100 {
        if db
            .scalar("SELECT COUNT(*) FROM pg_trigger WHERE tgname = 'windsock_ab_user_created'")
            .await
            == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give LISTEN a moment after the trigger exists.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    add_user(&db, "fast/erin", "erin@example.com", "Viewer").await;
    wait_for("the webhook", || !events.lock().unwrap().is_empty()).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(events.lock().unwrap()[0]["username"], "fast_erin");
    cancel.cancel();
    task.await.unwrap();
}

/// A user whose id was taken before a later one's but who committed after
/// it is still handled (the poll looks again just below its watermark),
/// and nobody is handled twice.
#[tokio::test]
async fn late_commits_below_the_watermark_are_not_missed() {
    let db = airflow_db(Dialect::Sqlite, "3.1.8").await;
    let (hook, events) = webhook_sink().await;
    let ic = interceptor(&db, settings(&hook, false), Arc::new(Store::new(["t"])));
    let start = ic.take_over().await.unwrap();
    let insert = |id: i64, name: &str| {
        format!(
            "INSERT INTO ab_user (id, first_name, last_name, username, email, active, created_on, changed_on) \
             VALUES ({id}, 'F', 'L', '{name}', '{name}@example.com', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);"
        )
    };
    db.exec_script(&insert(start + 5, "late/five")).await;
    let w = ic.poll(start).await.unwrap();
    assert_eq!(w, start + 5);
    // Id start+3 commits only now, below the watermark.
    db.exec_script(&insert(start + 3, "late/three")).await;
    let w = ic.poll(w).await.unwrap();
    assert_eq!(w, start + 5);
    let w = ic.poll(w).await.unwrap();
    // Webhooks are delivered beside the poll: wait for both, then make
    // sure no third comes.
    wait_for("two webhook events", || events.lock().unwrap().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let names: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e["username"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["late_five", "late_three"], "each once");
    assert_eq!(w, start + 5);
}
