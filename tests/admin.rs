//! The admin API against real PostgreSQL, MariaDB and SQLite, with the FAB
//! users real Airflow 2.10.5 and 3.1.8 created (`airflow users create`:
//! `admin`/`admin` with role Admin, `domain/alice`/`alice` with role Viewer;
//! rows copied from `tests/fixtures/data/<version>/sqlite.sql` into the real
//! schema of each dialect).

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use common::admin_api::{Api, TOKEN, api, basic, bearer, call, enc, get, patch, roles, state};
use common::fab::{add_user, airflow_db};
use common::{TestDb, fast_settings};
use serde_json::{Value, json};
use windsock::admin::auth::hash_token;
use windsock::admin::password;
use windsock::admin::users::UserStore;
use windsock::db::Dialect;
use windsock::db::write::WriteDb;
use windsock::metrics::Store;

fn api_with(
    users: Arc<UserStore>,
    metrics: Arc<Store>,
    basic: bool,
    dry_run: bool,
    max_failures: u32,
) -> Api {
    let mut s = state(users, basic, dry_run, max_failures);
    s.metrics = metrics;
    Api::new(s)
}

async fn stored_hash(db: &TestDb, username: &str) -> String {
    let rows = db
        .text_rows(&format!(
            "SELECT password FROM ab_user WHERE username = '{username}'"
        ))
        .await;
    rows[0][0].clone().unwrap()
}

/// The whole GET / search / PATCH / DELETE flow on one dialect and version.
async fn user_flow(dialect: Dialect, version: &str) {
    let db = airflow_db(dialect, version).await;
    // The users real Airflow created (admin, domain/alice, assumed-role/...).
    let base = db.scalar("SELECT COUNT(*) FROM ab_user").await;
    let api = api(&db, true, false);
    // The Airflow version decides the hash method, as the runner would
    // have detected it.
    let ro = db.windsock(&fast_settings());
    let schema = windsock::airflow::detect(&ro, Duration::from_secs(10))
        .await
        .unwrap();
    let major = schema.major;
    api.metrics.set_schema("t", Arc::new(schema));

    // GET by exact name with a slash; case-insensitive like FAB.
    let (s, alice) = get(&api, "domain/alice").await;
    assert_eq!(s, StatusCode::OK, "{alice}");
    assert_eq!(alice["username"], "domain/alice");
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["first_name"], "Alice");
    assert_eq!(alice["active"], true);
    assert_eq!(roles(&alice), ["Viewer"]);
    assert!(
        alice["created_on"].as_str().unwrap().contains('T'),
        "{alice}"
    );
    assert!(alice.get("password").is_none() && alice.get("id").is_none());
    for key in [
        "changed_on",
        "last_login",
        "login_count",
        "failed_login_count",
        "last_name",
    ] {
        assert!(alice.get(key).is_some(), "{key} missing");
    }
    let (s, upper) = get(&api, "DOMAIN/Alice").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(upper["username"], "domain/alice");
    let (s, e) = get(&api, "domain/alice2").await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("user_not_found"))
    );
    let (s, e) = call(&api, "GET", "/api/v1/users-ext/", Some(&bearer()), None).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("missing_username"))
    );

    // Name variants: MWAA's assumed-role principal, unicode, injection-shaped.
    add_user(
        &db,
        "assumed-role/Airflow-Admin/session-1",
        "mwaa@example.com",
        "Op",
    )
    .await;
    add_user(&db, "Zoë/Ünïcode", "zoe@example.com", "Viewer").await;
    let evil = "x'); DROP TABLE ab_user; --";
    add_user(&db, evil, "evil@example.com", "Viewer").await;
    let (s, v) = get(&api, "assumed-role/Airflow-Admin/session-1").await;
    assert_eq!(
        (s, v["username"].as_str()),
        (StatusCode::OK, Some("assumed-role/Airflow-Admin/session-1"))
    );
    assert_eq!(roles(&v), ["Op"]);
    let (s, v) = get(&api, "assumed-role/airflow-admin/SESSION-1").await;
    assert_eq!(
        (s, v["username"].as_str()),
        (StatusCode::OK, Some("assumed-role/Airflow-Admin/session-1"))
    );
    let (s, v) = get(&api, "Zoë/Ünïcode").await;
    assert_eq!(
        (s, v["username"].as_str()),
        (StatusCode::OK, Some("Zoë/Ünïcode"))
    );
    let (s, v) = get(&api, evil).await;
    assert_eq!((s, v["username"].as_str()), (StatusCode::OK, Some(evil)));
    let (s, _) = get(&api, "' OR '1'='1").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM ab_user").await, base + 3);

    // Search: substring and prefix, case-insensitive, paginated; LIKE
    // wildcards in the query are literal.
    let (s, page) = call(
        &api,
        "GET",
        "/api/v1/users-ext/search?q=ALI",
        Some(&bearer()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page["total_entries"], 1);
    assert_eq!(page["users"][0]["username"], "domain/alice");
    let (_, page) = call(
        &api,
        "GET",
        "/api/v1/users-ext/search?q=&limit=2&offset=0",
        Some(&bearer()),
        None,
    )
    .await;
    assert_eq!(
        (
            page["total_entries"].as_i64(),
            page["users"].as_array().unwrap().len()
        ),
        (Some(base + 3), 2)
    );
    let (_, page2) = call(
        &api,
        "GET",
        "/api/v1/users-ext/search?q=&limit=2&offset=2",
        Some(&bearer()),
        None,
    )
    .await;
    assert_ne!(page["users"][0]["username"], page2["users"][0]["username"]);
    let (_, page) = call(
        &api,
        "GET",
        "/api/v1/users-ext/search?q=assumed&match=prefix",
        Some(&bearer()),
        None,
    )
    .await;
    // The one real Airflow created and the one added here.
    assert_eq!(page["total_entries"], 2);
    let (_, page) = call(
        &api,
        "GET",
        "/api/v1/users-ext/search?q=role&match=prefix",
        Some(&bearer()),
        None,
    )
    .await;
    assert_eq!(page["total_entries"], 0);
    let (_, page) = call(
        &api,
        "GET",
        &format!("/api/v1/users-ext/search?q={}", enc("%")),
        Some(&bearer()),
        None,
    )
    .await;
    assert_eq!(page["total_entries"], 0, "% must be literal");
    let (s, _) = call(
        &api,
        "GET",
        "/api/v1/users-ext/search?q=a&limit=-1",
        Some(&bearer()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // PATCH: a real conflict is 409; update_mask is applied before the
    // uniqueness check; a case-only rename is no conflict.
    let q = format!("username={}", enc("domain/alice"));
    let (s, e) = patch(&api, &q, json!({"username": "ADMIN"})).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::CONFLICT, Some("username_taken")),
        "{e}"
    );
    let (s, e) = patch(&api, &q, json!({"email": "admin@example.com"})).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::CONFLICT, Some("email_taken"))
    );
    let (s, v) = patch(
        &api,
        &format!("{q}&update_mask=first_name"),
        json!({"first_name": "Alicia", "username": "admin"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["first_name"].as_str(), v["username"].as_str()),
        (Some("Alicia"), Some("domain/alice"))
    );
    let (s, v) = patch(&api, &q, json!({"username": "Domain/Alice"})).await;
    assert_eq!(
        (s, v["username"].as_str()),
        (StatusCode::OK, Some("Domain/Alice")),
        "{v}"
    );
    let q = format!("username={}", enc("Domain/Alice"));

    // Roles: unknown → 400 and nothing changes; known → replaced.
    let (s, e) = patch(
        &api,
        &q,
        json!({"roles": [{"name": "Viewer"}, {"name": "NoSuchRole"}]}),
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unknown_role"))
    );
    assert!(e["message"].as_str().unwrap().contains("NoSuchRole"));
    let (s, v) = patch(
        &api,
        &q,
        json!({"roles": [{"name": "Op"}, {"name": "User"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(roles(&v), ["Op", "User"]);

    // Password: hashed as FAB on this Airflow version hashes, verifiable.
    let (s, _) = patch(&api, &q, json!({"password": "n3w-Secret"})).await;
    assert_eq!(s, StatusCode::OK);
    let hash = stored_hash(&db, "Domain/Alice").await;
    let prefix = if major >= 3 {
        "scrypt:32768:8:1$"
    } else {
        "pbkdf2:sha256:260000$"
    };
    assert!(hash.starts_with(prefix), "{hash}");
    assert_eq!(password::verify(&hash, "n3w-Secret"), Ok(true));
    assert_eq!(password::verify(&hash, "alice"), Ok(false));

    // Dry run: the answer shows the change, the row does not get it.
    let (s, v) = patch(
        &api,
        &format!("{q}&dry_run=true"),
        json!({"last_name": "Dry"}),
    )
    .await;
    assert_eq!(
        (s, v["dry_run"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{v}"
    );
    assert_eq!(v["after"]["last_name"], "Dry");
    assert_eq!(get(&api, "Domain/Alice").await.1["last_name"], "Slash");

    // Bodies: wrong type 415, oversize 413, broken JSON / unknown field 400.
    let uri = format!("/api/v1/users-ext/?{q}");
    let (s, e) = call(
        &api,
        "PATCH",
        &uri,
        Some(&bearer()),
        Some(("text/plain", "{}".into())),
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        )
    );
    let big = json!({"first_name": "x".repeat(10_000)}).to_string();
    let (s, e) = call(
        &api,
        "PATCH",
        &uri,
        Some(&bearer()),
        Some(("application/json", big)),
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large"))
    );
    let (s, e) = call(
        &api,
        "PATCH",
        &uri,
        Some(&bearer()),
        Some(("application/json", "{nope".into())),
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_body"))
    );
    let (s, _) = patch(&api, &q, json!({"is_admin": true})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, e) = patch(&api, &q, json!({"email": "not-an-email"})).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_field"))
    );

    // DELETE: the last active Admin and the caller itself are refused.
    let (s, e) = call(
        &api,
        "DELETE",
        "/api/v1/users-ext/?username=admin",
        Some(&bearer()),
        None,
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::CONFLICT, Some("last_admin"))
    );
    let (s, e) = patch(&api, "username=admin", json!({"active": false})).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::CONFLICT, Some("last_admin"))
    );
    let (s, e) = call(
        &api,
        "DELETE",
        "/api/v1/users-ext/?username=admin",
        Some(&basic("admin", "admin")),
        None,
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::CONFLICT, Some("self_delete"))
    );
    let (s, _) = call(
        &api,
        "DELETE",
        &format!("/api/v1/users-ext/?{q}&dry_run=true"),
        Some(&bearer()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(get(&api, "Domain/Alice").await.0, StatusCode::OK);
    let (s, v) = call(
        &api,
        "DELETE",
        &format!("/api/v1/users-ext/?{q}"),
        Some(&bearer()),
        None,
    )
    .await;
    assert_eq!((s, v), (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(get(&api, "Domain/Alice").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM ab_user_role WHERE user_id = 2")
            .await,
        0
    );
    assert_eq!(db.scalar("SELECT COUNT(*) FROM ab_user").await, base + 2);

    // Audit counters: applied, refused and dry-run writes are all counted.
    let n = |action, outcome| {
        api.metrics
            .event(
                "windsock_admin_audit_events",
                &[("action", action), ("outcome", outcome)],
            )
            .unwrap_or(0.0)
    };
    assert_eq!(n("update", "applied"), 4.0);
    assert_eq!(n("update", "dry_run"), 1.0);
    assert!(n("update", "refused") >= 5.0);
    assert_eq!(
        (
            n("delete", "applied"),
            n("delete", "dry_run"),
            n("delete", "refused")
        ),
        (1.0, 1.0, 2.0)
    );
}

#[tokio::test]
async fn user_flow_postgres_airflow3() {
    user_flow(Dialect::Postgres, "3.1.8").await;
}

#[tokio::test]
async fn user_flow_mysql_airflow3() {
    user_flow(Dialect::MySql, "3.1.8").await;
}

#[tokio::test]
async fn user_flow_sqlite_airflow3() {
    user_flow(Dialect::Sqlite, "3.1.8").await;
}

#[tokio::test]
async fn user_flow_postgres_airflow2() {
    user_flow(Dialect::Postgres, "2.10.5").await;
}

#[tokio::test]
async fn user_flow_mysql_airflow2() {
    user_flow(Dialect::MySql, "2.10.5").await;
}

#[tokio::test]
async fn user_flow_sqlite_airflow2() {
    user_flow(Dialect::Sqlite, "2.10.5").await;
}

/// Credentials are checked before anything else; failures are 401/403 and
/// counted, and token failures never reach the database (the store points
/// at a closed port: a DB access would answer 503). Requests without
/// credentials are no failed attempt, and a client over the limit still
/// gets in with a valid token.
#[tokio::test]
async fn auth_failures_are_rejected_and_rate_limited() {
    let dead = windsock::db::url::DbUrl::parse("postgres://postgres@127.0.0.1:1/none").unwrap();
    let users = Arc::new(UserStore::new(
        WriteDb::new(&dead, &fast_settings()).unwrap(),
    ));
    let metrics = Arc::new(Store::new(["t"]));
    let api = api_with(users, metrics.clone(), false, false, 3);
    let uri = "/api/v1/users-ext/?username=admin";
    // A health check without credentials, many times: never limited.
    for _ in 0..10 {
        let (s, e) = call(&api, "GET", uri, None, None).await;
        assert_eq!(
            (s, e["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("missing_credentials"))
        );
    }
    for _ in 0..3 {
        let (s, e) = call(&api, "GET", uri, Some("Bearer wrong-token"), None).await;
        assert_eq!(
            (s, e["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("bad_token"))
        );
    }
    // The budget is used up: the next guess is refused unchecked...
    let (s, e) = call(&api, "GET", uri, Some("Bearer still-wrong"), None).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    // ...but the right token from the same address works (and reaches the
    // dead DB: 503, no detail).
    let (s, e) = call(&api, "GET", uri, Some(&bearer()), None).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("database_error"))
    );
    assert!(!e["message"].as_str().unwrap().contains("127.0.0.1"), "{e}");
    let (s, e) = call(&api, "DELETE", uri, Some(&basic("admin", "admin")), None).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("basic_disabled"))
    );
    for (reason, n) in [
        ("missing_credentials", None),
        ("bad_token", Some(3.0)),
        ("basic_disabled", Some(1.0)),
        ("rate_limited", Some(1.0)),
    ] {
        assert_eq!(
            metrics.event("windsock_admin_auth_failures", &[("reason", reason)]),
            n,
            "{reason}"
        );
    }
}

/// Basic auth checks Airflow's own hashes (pbkdf2 on 2.10.5, scrypt on
/// 3.1.8) and requires the Admin role.
#[tokio::test]
async fn basic_auth_uses_airflow_password_hashes() {
    for version in ["2.10.5", "3.1.8"] {
        let db = airflow_db(Dialect::Sqlite, version).await;
        let api = api(&db, true, false);
        let uri = "/api/v1/users-ext/?username=domain%2Falice";
        let (s, v) = call(&api, "GET", uri, Some(&basic("admin", "admin")), None).await;
        assert_eq!(
            (s, v["username"].as_str()),
            (StatusCode::OK, Some("domain/alice")),
            "{version}"
        );
        // FAB's case-insensitive username rule applies to logins too.
        let (s, _) = call(&api, "GET", uri, Some(&basic("ADMIN", "admin")), None).await;
        assert_eq!(s, StatusCode::OK);
        let (s, e) = call(&api, "GET", uri, Some(&basic("admin", "Admin")), None).await;
        assert_eq!(
            (s, e["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("bad_password"))
        );
        let (s, e) = call(&api, "GET", uri, Some(&basic("nobody", "admin")), None).await;
        assert_eq!(
            (s, e["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("bad_password"))
        );
        // A correct password without the Admin role: 403, and the PATCH it
        // carried changed nothing.
        let (s, e) = call(
            &api,
            "PATCH",
            uri,
            Some(&basic("domain/alice", "alice")),
            Some((
                "application/json",
                json!({"roles": [{"name": "Admin"}]}).to_string(),
            )),
        )
        .await;
        assert_eq!(
            (s, e["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden_role"))
        );
        assert_eq!(roles(&get(&api, "domain/alice").await.1), ["Viewer"]);
        // A deactivated admin cannot log in.
        db.exec_script("UPDATE ab_user SET active = 0 WHERE username = 'admin'")
            .await;
        let (s, _) = call(&api, "GET", uri, Some(&basic("admin", "admin")), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
}

/// Unknown routes and methods answer JSON too (after authentication).
#[tokio::test]
async fn unknown_routes_and_methods_are_json() {
    let db = airflow_db(Dialect::Sqlite, "3.1.8").await;
    let api = api(&db, false, false);
    let (s, e) = call(&api, "GET", "/api/v1/users", Some(&bearer()), None).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("no_such_route"))
    );
    let (s, e) = call(
        &api,
        "POST",
        "/api/v1/users-ext/?username=admin",
        Some(&bearer()),
        None,
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
    let (s, _) = call(&api, "GET", "/api/v1/users", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// Global dry-run mode: every write reports and changes nothing.
#[tokio::test]
async fn global_dry_run_changes_nothing() {
    let db = airflow_db(Dialect::Postgres, "3.1.8").await;
    let base = db.scalar("SELECT COUNT(*) FROM ab_user").await;
    let api = api(&db, false, true);
    let (s, v) = patch(&api, "username=domain%2Falice", json!({"active": false})).await;
    assert_eq!((s, v["dry_run"].as_bool()), (StatusCode::OK, Some(true)));
    assert_eq!(v["after"]["active"], false);
    assert_eq!(get(&api, "domain/alice").await.1["active"], true);
    let (s, _) = call(
        &api,
        "DELETE",
        "/api/v1/users-ext/?username=domain%2Falice",
        Some(&bearer()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM ab_user").await, base);
}

/// The binary end to end: `windsock admin hash-token`, `windsock run` with
/// the admin API on its own TLS listener (rustls, a certificate made by
/// openssl), called with curl; the audit reaches the log and /metrics, and
/// neither the token nor a new password does.
#[test]
fn daemon_serves_the_admin_api_over_tls() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(airflow_db(Dialect::Sqlite, "3.1.8"));
    let dir = std::env::temp_dir().join(format!("ws-admin-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(ok.success());

    let mut hasher = Command::new(env!("CARGO_BIN_EXE_windsock"))
        .args(["admin", "hash-token"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(hasher.stdin.take().unwrap(), "{TOKEN}").unwrap();
    let out = hasher.wait_with_output().unwrap();
    let sha = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(sha, hash_token(TOKEN));

    let config = dir.join("windsock.toml");
    let write_config = |auth: &str| {
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\n\
                 [[targets]]\nenvironment = \"e2e\"\nurl = \"{}\"\n\
                 [admin]\nlisten = \"127.0.0.1:0\"\n\
                 [admin.tls]\ncert = \"{}\"\nkey = \"{}\"\n{auth}",
                db.url,
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
    };
    // No authentication configured: refused before any port is bound.
    write_config("");
    let status = Command::new(env!("CARGO_BIN_EXE_windsock"))
        .args(["run", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&status.stderr).contains("admin.auth"));

    write_config(&format!(
        "[admin.auth]\nbasic = true\n[[admin.auth.tokens]]\nname = \"e2e\"\nsha256 = \"{sha}\"\nscopes = [\"read\", \"write\"]\nroles = [\"Admin\"]\n"
    ));
    let ws = common::Windsock::start(&["run", "--config", config.to_str().unwrap()], &[]);
    let admin = ws.admin_addr("https");
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&cert)
            .args(["-w", "\n%{http_code}"])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "000"));
        (code.to_owned(), body.to_owned())
    };
    let url = format!("https://{admin}/api/v1/users-ext/?username=domain%2Falice");
    let (code, body) = curl(&["-H", &format!("Authorization: Bearer {TOKEN}"), &url]);
    assert_eq!(code, "200", "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["username"],
        "domain/alice"
    );
    let (code, _) = curl(&["-u", "admin:admin", &url]);
    assert_eq!(code, "200");
    let (code, _) = curl(&["-u", "admin:wrong", &url]);
    assert_eq!(code, "401");
    let (code, body) = curl(&[
        "-X",
        "PATCH",
        "-u",
        "admin:admin",
        "-H",
        "Content-Type: application/json",
        "--data",
        r#"{"password": "Very-Secret-Pw-42"}"#,
        &url,
    ]);
    assert_eq!(code, "200", "{body}");
    // Plain HTTP on the TLS port gets no answer.
    let plain = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            &url.replace("https://", "http://"),
        ])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("domain/alice"));

    let (status, _, metrics) = common::http_get(ws.addr, "/metrics", None);
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"windsock_admin_requests_total{operation="get",code="200"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"windsock_admin_auth_failures_total{reason="bad_password"} 1"#));
    assert!(
        metrics
            .contains(r#"windsock_admin_audit_events_total{action="update",outcome="applied"} 1"#)
    );
    let (_, log) = ws.terminate();
    assert!(log.contains("Admin change."), "{log}");
    assert!(log.contains("password_changed=true"), "{log}");
    for secret in [TOKEN, "Very-Secret-Pw-42", "admin:admin", "scrypt:"] {
        assert!(
            !log.contains(secret),
            "{secret} leaked into the log:\n{log}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
