//! Least privilege on the admin API, as attacks against the router and the
//! binary, on the users real Airflow 3.1.8 created (`admin` with Admin,
//! `domain/alice` with Viewer) in real PostgreSQL, MariaDB and SQLite:
//! scopes per token, no grant or change above the caller's own roles,
//! tokens refused over plain HTTP from other hosts, the failure limiter
//! keyed so one bad client locks nobody else out, control characters
//! stopped before the database, unusable hashes as slow as wrong passwords,
//! concurrent last-Admin removals retried instead of failing, and an audit
//! line per request that no input can forge.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::TestDb;
use common::admin_api::{
    Api, basic, bearer, call, call_from, enc, get, patch, patch_as, roles, state, token, users,
};
use common::fab::{add_user, airflow_db};
use serde_json::json;
use windsock::admin::auth::Tokens;
use windsock::admin::password;
use windsock::config::Scope;
use windsock::db::Dialect;

const ALICE: &str = "username=domain%2Falice";

/// Sets `username`'s password hash (FAB's pbkdf2 format).
async fn set_password(db: &TestDb, username: &str, pw: &str) {
    let hash = password::generate(password::Method::AIRFLOW_2, pw);
    db.exec_script(&format!(
        "UPDATE ab_user SET password = '{hash}' WHERE username = '{username}'"
    ))
    .await;
}

async fn stored(db: &TestDb, sql: &str) -> Vec<Vec<Option<String>>> {
    db.text_rows(sql).await
}

/// `(status, code)` of an answer.
fn sc(r: &(StatusCode, serde_json::Value)) -> (StatusCode, Option<&str>) {
    (r.0, r.1["code"].as_str())
}

fn scoped_api(db: &TestDb) -> Api {
    let mut s = state(users(db), false, false, 100);
    s.tokens = Arc::new(Tokens::new(&[
        token("reader", "reader-secret", &[Scope::Read], &[]),
        token(
            "writer",
            "writer-secret",
            &[Scope::Read, Scope::Write],
            &["Admin"],
        ),
        token("op", "op-secret", &Scope::ALL, &["Op"]),
        token("full", common::admin_api::TOKEN, &Scope::ALL, &["Admin"]),
    ]));
    Api::new(s)
}

/// Each token does what its scopes allow and nothing more; a token acting
/// as Op cannot grant Admin, cannot touch an Admin's password or account,
/// and can manage users below it.
#[tokio::test]
async fn scopes_and_roles_bound_each_token() {
    let db = airflow_db(Dialect::Sqlite, "3.1.8").await;
    let api = scoped_api(&db);
    let admin_hash = stored(&db, "SELECT password FROM ab_user WHERE username = 'admin'").await;

    let reader = "Bearer reader-secret";
    let r = call(
        &api,
        "GET",
        &format!("/api/v1/users-ext/?{ALICE}"),
        Some(reader),
        None,
    )
    .await;
    assert_eq!(r.1["username"], "domain/alice");
    let r = call(
        &api,
        "GET",
        "/api/v1/users-ext/search?q=alice",
        Some(reader),
        None,
    )
    .await;
    assert_eq!(r.0, StatusCode::OK);
    let r = patch_as(&api, reader, ALICE, json!({"email": "x@example.com"})).await;
    assert_eq!(sc(&r), (StatusCode::FORBIDDEN, Some("insufficient_scope")));
    let r = call(
        &api,
        "DELETE",
        &format!("/api/v1/users-ext/?{ALICE}"),
        Some(reader),
        None,
    )
    .await;
    assert_eq!(sc(&r), (StatusCode::FORBIDDEN, Some("insufficient_scope")));

    let writer = "Bearer writer-secret";
    let r = patch_as(
        &api,
        writer,
        ALICE,
        json!({"email": "alice@new.example.com"}),
    )
    .await;
    assert_eq!(
        (r.0, r.1["email"].as_str()),
        (StatusCode::OK, Some("alice@new.example.com"))
    );
    let r = patch_as(&api, writer, ALICE, json!({"roles": [{"name": "Op"}]})).await;
    assert_eq!(sc(&r), (StatusCode::FORBIDDEN, Some("insufficient_scope")));

    let op = "Bearer op-secret";
    for body in [
        json!({"roles": [{"name": "Admin"}]}),
        json!({"roles": [{"name": "Viewer"}, {"name": "Admin"}]}),
    ] {
        let r = patch_as(&api, op, ALICE, body).await;
        assert_eq!(
            sc(&r),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{}",
            r.1
        );
    }
    let r = patch_as(
        &api,
        op,
        "username=admin",
        json!({"password": "taken-over"}),
    )
    .await;
    assert_eq!(sc(&r), (StatusCode::FORBIDDEN, Some("forbidden")));
    let r = patch_as(
        &api,
        op,
        "username=admin",
        json!({"roles": [{"name": "Viewer"}]}),
    )
    .await;
    assert_eq!(sc(&r), (StatusCode::FORBIDDEN, Some("forbidden")));
    let r = call(
        &api,
        "DELETE",
        "/api/v1/users-ext/?username=admin",
        Some(op),
        None,
    )
    .await;
    assert_eq!(sc(&r), (StatusCode::FORBIDDEN, Some("forbidden")));
    // Nothing of that happened.
    assert_eq!(
        stored(&db, "SELECT password FROM ab_user WHERE username = 'admin'").await,
        admin_hash
    );
    assert_eq!(roles(&get(&api, "admin").await.1), ["Admin"]);
    assert_eq!(roles(&get(&api, "domain/alice").await.1), ["Viewer"]);
    // Below Op it acts: User and Op are roles it holds (Op includes User).
    let r = patch_as(
        &api,
        op,
        ALICE,
        json!({"roles": [{"name": "Viewer"}, {"name": "Op"}]}),
    )
    .await;
    assert_eq!(
        (r.0, roles(&r.1)),
        (StatusCode::OK, vec!["Op".into(), "Viewer".into()])
    );
    let r = call(
        &api,
        "DELETE",
        &format!("/api/v1/users-ext/?{ALICE}"),
        Some(op),
        None,
    )
    .await;
    assert_eq!(r.0, StatusCode::NO_CONTENT);
    // The Admin token may grant Admin.
    add_user(&db, "team/bea", "bea@example.com", "Viewer").await;
    let r = patch(
        &api,
        "username=team%2Fbea",
        json!({"roles": [{"name": "Admin"}]}),
    )
    .await;
    assert_eq!((r.0, roles(&r.1)), (StatusCode::OK, vec!["Admin".into()]));
}

/// `required_role = "Op"` (with `allow_non_admin_role`): an Op user over
/// basic auth manages users below it and nobody above.
#[tokio::test]
async fn a_non_admin_required_role_cannot_reach_above_itself() {
    let db = airflow_db(Dialect::Postgres, "3.1.8").await;
    add_user(&db, "ops/olga", "olga@example.com", "Op").await;
    set_password(&db, "ops/olga", "olga-pw").await;
    let mut s = state(users(&db), true, false, 100);
    s.required_role = "Op".into();
    let api = Api::new(s);
    let olga = basic("ops/olga", "olga-pw");
    let r = call(
        &api,
        "GET",
        "/api/v1/users-ext/?username=admin",
        Some(&olga),
        None,
    )
    .await;
    assert_eq!(r.0, StatusCode::OK);
    let r = patch_as(&api, &olga, ALICE, json!({"roles": [{"name": "Admin"}]})).await;
    assert_eq!(sc(&r), (StatusCode::FORBIDDEN, Some("forbidden")));
    let r = patch_as(
        &api,
        &olga,
        "username=admin",
        json!({"password": "mine-now"}),
    )
    .await;
    assert_eq!(sc(&r), (StatusCode::FORBIDDEN, Some("forbidden")));
    let r = patch_as(&api, &olga, "username=admin", json!({"active": false})).await;
    assert_eq!(sc(&r), (StatusCode::FORBIDDEN, Some("forbidden")));
    // Olga may promote herself no further either.
    let r = patch_as(
        &api,
        &olga,
        "username=ops%2Folga",
        json!({"roles": [{"name": "Admin"}]}),
    )
    .await;
    assert_eq!(sc(&r), (StatusCode::FORBIDDEN, Some("forbidden")));
    assert_eq!(roles(&get(&api, "ops/olga").await.1), ["Op"]);
    let r = patch_as(&api, &olga, ALICE, json!({"roles": [{"name": "User"}]})).await;
    assert_eq!((r.0, roles(&r.1)), (StatusCode::OK, vec!["User".into()]));
    // A Viewer (without the required role) gets nothing.
    let r = call(
        &api,
        "GET",
        "/api/v1/users-ext/?username=admin",
        Some(&basic("domain/alice", "alice")),
        None,
    )
    .await;
    assert_eq!(sc(&r), (StatusCode::FORBIDDEN, Some("forbidden_role")));
}

/// A bearer token over plain HTTP from another host is refused (it has
/// crossed the network in clear); from loopback, over TLS, or with
/// `allow_plain_http_tokens` it is accepted.
#[tokio::test]
async fn tokens_over_plain_http_from_other_hosts_are_refused() {
    let db = airflow_db(Dialect::Sqlite, "3.1.8").await;
    let uri = "/api/v1/users-ext/?username=admin";
    let remote: SocketAddr = "10.1.2.3:50000".parse().unwrap();
    let mut s = state(users(&db), false, false, 100);
    let api = Api::new(s.clone());
    let r = call_from(&api, remote, "GET", uri, Some(&bearer()), None).await;
    assert_eq!(sc(&r), (StatusCode::FORBIDDEN, Some("tls_required")));
    for local in ["127.0.0.1:1", "[::1]:1", "[::ffff:127.0.0.1]:1"] {
        let r = call_from(
            &api,
            local.parse().unwrap(),
            "GET",
            uri,
            Some(&bearer()),
            None,
        )
        .await;
        assert_eq!(r.0, StatusCode::OK, "{local}");
    }
    s.allow_plain_http_tokens = true;
    let r = call_from(
        &Api::new(s.clone()),
        remote,
        "GET",
        uri,
        Some(&bearer()),
        None,
    )
    .await;
    assert_eq!(r.0, StatusCode::OK);
    s.allow_plain_http_tokens = false;
    s.tls = true;
    let r = call_from(&Api::new(s), remote, "GET", uri, Some(&bearer()), None).await;
    assert_eq!(r.0, StatusCode::OK);
}

/// Basic-auth failures are counted per address and username: guessing
/// `admin` locks `admin` (in any case) from that address, not another
/// Admin behind the same address, nor a token. A NUL byte in the username
/// is a counted failure that never reaches PostgreSQL (which would reject
/// the query), and is not forgiven.
#[tokio::test]
async fn basic_failures_lock_only_the_guessed_name() {
    let db = airflow_db(Dialect::Postgres, "3.1.8").await;
    add_user(&db, "second", "second@example.com", "Admin").await;
    set_password(&db, "second", "second-pw").await;
    let api = Api::new(state(users(&db), true, false, 3));
    let uri = "/api/v1/users-ext/?username=admin";
    for _ in 0..3 {
        let r = call(&api, "GET", uri, Some(&basic("admin", "guess")), None).await;
        assert_eq!(sc(&r), (StatusCode::UNAUTHORIZED, Some("bad_password")));
    }
    for who in [basic("admin", "admin"), basic("ADMIN", "admin")] {
        let r = call(&api, "GET", uri, Some(&who), None).await;
        assert_eq!(
            sc(&r),
            (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
        );
    }
    let r = call(&api, "GET", uri, Some(&basic("second", "second-pw")), None).await;
    assert_eq!(r.0, StatusCode::OK);
    let r = call(&api, "GET", uri, Some(&bearer()), None).await;
    assert_eq!(r.0, StatusCode::OK);

    for _ in 0..3 {
        let r = call(&api, "GET", uri, Some(&basic("ad\0min", "x")), None).await;
        assert_eq!(sc(&r), (StatusCode::UNAUTHORIZED, Some("bad_username")));
    }
    let r = call(&api, "GET", uri, Some(&basic("ad\0min", "x")), None).await;
    assert_eq!(
        sc(&r),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    // In the query string too: 400 before the database.
    let r = call(
        &api,
        "GET",
        "/api/v1/users-ext/?username=ad%00min",
        Some(&bearer()),
        None,
    )
    .await;
    assert_eq!(sc(&r), (StatusCode::BAD_REQUEST, Some("invalid_field")));
    let r = call(
        &api,
        "GET",
        "/api/v1/users-ext/search?q=a%0Ab",
        Some(&bearer()),
        None,
    )
    .await;
    assert_eq!(sc(&r), (StatusCode::BAD_REQUEST, Some("invalid_field")));
}

fn median_of_3(mut f: impl FnMut() -> Duration) -> Duration {
    let mut t = [f(), f(), f()];
    t.sort();
    t[1]
}

/// Users whose stored hash is unusable (NULL for LDAP/OAuth users, a
/// foreign format) answer as slowly as unknown names and wrong passwords,
/// so timing tells no one who exists. (A ratio of medians: the check is a
/// full pbkdf2 or none, a difference of orders of magnitude.)
#[tokio::test(flavor = "multi_thread")]
async fn unusable_hashes_cost_as_much_as_wrong_passwords() {
    let db = airflow_db(Dialect::Sqlite, "3.1.8").await;
    add_user(&db, "ldap/lena", "lena@example.com", "Admin").await;
    add_user(&db, "oauth/otto", "otto@example.com", "Admin").await;
    db.exec_script(
        "UPDATE ab_user SET password = 'sso:not-a-werkzeug-hash' WHERE username = 'oauth/otto'",
    )
    .await;
    let api = Api::new(state(users(&db), true, false, 1000));
    // As the runner would have detected it: Airflow 3, scrypt.
    let schema = windsock::airflow::detect(
        &db.windsock(&common::fast_settings()),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    api.metrics.set_schema("t", Arc::new(schema));
    let rt = tokio::runtime::Handle::current();
    let time = |user: &str, pw: &str| {
        let auth = basic(user, pw);
        median_of_3(|| {
            let t0 = Instant::now();
            let r = tokio::task::block_in_place(|| {
                rt.block_on(call(
                    &api,
                    "GET",
                    "/api/v1/users-ext/search",
                    Some(&auth),
                    None,
                ))
            });
            assert_eq!(r.0, StatusCode::UNAUTHORIZED, "{user}");
            t0.elapsed()
        })
    };
    let unknown = time("nobody/here", "pw");
    let wrong = time("admin", "wrong");
    let null_hash = time("ldap/lena", "pw");
    let foreign = time("oauth/otto", "pw");
    eprintln!(
        "unknown {unknown:?}, wrong password {wrong:?}, NULL hash {null_hash:?}, foreign {foreign:?}"
    );
    for (what, t) in [("NULL hash", null_hash), ("foreign hash", foreign)] {
        assert!(
            t * 2 >= unknown,
            "{what}: {t:?} against {unknown:?} for an unknown name"
        );
        assert!(
            t * 2 >= wrong,
            "{what}: {t:?} against {wrong:?} for a wrong password"
        );
    }
}

/// Two Admins demote each other at the same moment, round after round: on
/// PostgreSQL the two last-Admin checks deadlock and one is aborted; it is
/// retried and refused as the last Admin (409), never a 503. One Admin
/// always remains.
async fn concurrent_last_admin(dialect: Dialect) {
    let db = airflow_db(dialect, "3.1.8").await;
    add_user(&db, "admin2", "admin2@example.com", "Admin").await;
    let api = Api::new(state(users(&db), false, false, 100));
    let t = if dialect == Dialect::Postgres {
        "true"
    } else {
        "1"
    };
    for round in 0..5 {
        let (a, b) = tokio::join!(
            patch(&api, "username=admin", json!({"active": false})),
            patch(&api, "username=admin2", json!({"active": false})),
        );
        let mut got = [a.0, b.0];
        got.sort();
        assert_eq!(
            got,
            [StatusCode::OK, StatusCode::CONFLICT],
            "round {round}: {a:?} {b:?}"
        );
        let active = db
            .scalar(&format!(
                "SELECT COUNT(*) FROM ab_user WHERE username IN ('admin', 'admin2') AND active = {t}"
            ))
            .await;
        assert_eq!(active, 1);
        db.exec_script(&format!("UPDATE ab_user SET active = {t}"))
            .await;
    }
}

#[tokio::test]
async fn concurrent_last_admin_postgres() {
    concurrent_last_admin(Dialect::Postgres).await;
}

#[tokio::test]
async fn concurrent_last_admin_mysql() {
    concurrent_last_admin(Dialect::MySql).await;
}

/// The binary: every request is audited (GET and search included) with
/// the caller and the client, and a `%0A` in a username cannot start a
/// forged line. Config mistakes about authorization exit 64.
#[test]
fn every_request_is_audited_and_cannot_forge_lines() {
    use std::process::Command;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(airflow_db(Dialect::Sqlite, "3.1.8"));
    let dir = std::env::temp_dir().join(format!("ws-authz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("windsock.toml");
    let write = |auth: &str| {
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\n[[targets]]\nenvironment = \"a\"\nurl = \"{}\"\n\
                 [admin]\nlisten = \"127.0.0.1:0\"\n{auth}",
                db.url
            ),
        )
        .unwrap();
    };
    let sha = windsock::admin::auth::hash_token("audit-token-0123456789");
    for (auth, key) in [
        (
            format!("[[admin.auth.tokens]]\nname = \"t\"\nsha256 = \"{sha}\"\n"),
            "scopes",
        ),
        (
            format!(
                "[[admin.auth.tokens]]\nname = \"t\"\nsha256 = \"{sha}\"\nscopes = [\"write\"]\n"
            ),
            "admin.auth.tokens[0].roles",
        ),
        (
            format!(
                "[[admin.auth.tokens]]\nname = \"t\"\nsha256 = \"{sha}\"\nscopes = [\"own\"]\n"
            ),
            "scopes",
        ),
        (
            "[admin.auth]\nbasic = true\nrequired_role = \"Op\"\n".to_owned(),
            "allow_non_admin_role",
        ),
    ] {
        write(&auth);
        let out = Command::new(env!("CARGO_BIN_EXE_windsock"))
            .args(["config", "validate", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{auth}: {err}");
        assert!(err.contains(key), "{key}: {err}");
    }
    write(&format!(
        "[[admin.auth.tokens]]\nname = \"t\"\nsha256 = \"{sha}\"\nscopes = [\"read\"]\n"
    ));
    let ws = common::Windsock::start(&["run", "--config", config.to_str().unwrap()], &[]);
    let admin = ws.admin_addr("http");
    let curl = |path: &str| {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
            ])
            .args(["-H", "Authorization: Bearer audit-token-0123456789"])
            .arg(format!("http://{admin}{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let forged = format!(
        "/api/v1/users-ext/?username={}",
        enc("evil\n2026-12-01T00:00:00Z  INFO forged audit line")
    );
    assert_eq!(curl(&forged), "400");
    assert_eq!(curl("/api/v1/users-ext/?username=admin"), "200");
    assert_eq!(curl("/api/v1/users-ext/search?q=ali"), "200");
    let (_, log) = ws.terminate();
    let audits: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Admin request."))
        .collect();
    assert_eq!(audits.len(), 3, "{log}");
    assert!(audits[0].contains(r"evil\n2026-12-01"), "{}", audits[0]);
    assert!(
        !log.lines().any(|l| l.starts_with("2026-12-01T00:00:00Z")),
        "{log}"
    );
    assert!(
        audits[1].contains("actor=token:t")
            && audits[1].contains("method=GET")
            && audits[1].contains("username=admin")
            && audits[1].contains("status=200")
            && audits[1].contains("client=127.0.0.1"),
        "{}",
        audits[1]
    );
    assert!(audits[2].contains("/api/v1/users-ext/search") && audits[2].contains("username=ali"));
    let _ = std::fs::remove_dir_all(&dir);
}
