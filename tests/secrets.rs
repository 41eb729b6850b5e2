//! No password appears in any log line, metric or error: the binary's
//! stderr is captured at debug level (sqlx's own logging included) while it
//! connects, collects, fails and shuts down.

mod common;

use std::process::Command;

use common::{TestDb, Windsock, http_get, wait_ready};
use windsock::db::Dialect;

const SECRET: &str = "Sup3r-Secret-Passw0rd";

#[tokio::test(flavor = "multi_thread")]
async fn password_never_logged_or_exported_while_running() {
    let db = TestDb::with_schema(Dialect::Postgres, "3.1.8").await;
    // The local PostgreSQL uses trust auth: the password is sent nowhere but
    // still travels through windsock's config, URL parsing and logging.
    let url = db
        .url
        .replacen("postgres@", &format!("postgres:{SECRET}@"), 1);
    assert!(url.contains(SECRET));
    for format in ["text", "json"] {
        let ws = Windsock::start(
            &[
                "run",
                "--db-url",
                &url,
                "--environment",
                "secret-test",
                "--listen",
                "127.0.0.1:0",
            ],
            &[("RUST_LOG", "debug"), ("WINDSOCK_LOG__FORMAT", format)],
        );
        wait_ready(ws.addr);
        let (_, _, metrics) = http_get(ws.addr, "/metrics", None);
        assert!(
            metrics.contains("windsock_up{environment=\"secret-test\"} 1"),
            "{metrics}"
        );
        assert!(!metrics.contains(SECRET));
        let (status, log) = ws.terminate();
        assert!(status.success(), "{log}");
        assert!(
            !log.contains(SECRET),
            "{format} log leaked the password:\n{log}"
        );
        // The URL was logged, redacted.
        assert!(log.contains("postgres:***@127.0.0.1"), "{format}: {log}");
    }
}

/// Authentication failure, password from an environment variable, JSON logs.
#[test]
fn password_from_env_not_in_auth_failure() {
    let dir = std::env::temp_dir().join(format!("windsock-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("windsock.toml");
    std::fs::write(
        &cfg,
        "[log]\nformat = \"json\"\nlevel = \"debug\"\n\n[[targets]]\nenvironment = \"auth\"\n\
         url = \"mysql+mysqldb://root@127.0.0.1:3306/mysql\"\npassword_env = \"WS_TEST_DB_PASSWORD\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_windsock"))
        .args(["check", "-c", cfg.to_str().unwrap()])
        .env("WS_TEST_DB_PASSWORD", SECRET)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // root has no password here, so a wrong one is refused.
    assert_eq!(out.status.code(), Some(69), "{all}");
    assert!(all.contains("root:***@127.0.0.1:3306"), "{all}");
    assert!(!all.contains(SECRET), "password leaked:\n{all}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Hostile URL shapes: a password with unencoded `/` or `?` (read as
/// SQLAlchemy reads them) and `?password=` in the query string never reach
/// stderr, whichever command reads them; the query-string form is refused
/// (exit 64) before anything connects.
#[test]
fn malformed_and_query_string_passwords_are_never_printed() {
    let cases = [
        (format!("postgresql://u:pa/{SECRET}@127.0.0.1:1/db"), None),
        (format!("postgresql://u:pa?{SECRET}@127.0.0.1:1/db"), None),
        (format!("mysql://u:{SECRET}/x@127.0.0.1:1/db"), None),
        (
            format!("postgresql://u@127.0.0.1:1/db?password={SECRET}"),
            Some(64),
        ),
        (
            format!("mysql://u@127.0.0.1:1/db?sslmode=disabled&PASSWORD={SECRET}"),
            Some(64),
        ),
    ];
    for (url, code) in &cases {
        for args in [
            &["check", "--db-url", url.as_str()][..],
            &[
                "export",
                "run",
                "--db-url",
                url.as_str(),
                "--to",
                "/nonexistent/x",
            ][..],
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_windsock"))
                .args(args)
                .env("RUST_LOG", "debug")
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!out.status.success(), "{args:?}: {text}");
            assert!(
                !text.contains(SECRET),
                "{args:?} printed the password:\n{text}"
            );
            if let Some(code) = code {
                assert_eq!(out.status.code(), Some(*code), "{args:?}: {text}");
                assert!(text.contains("password_env or password_file"), "{text}");
            }
        }
    }
}
