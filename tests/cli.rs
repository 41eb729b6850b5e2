//! The binary's command line: help, version, config validation and exit
//! statuses for bad input.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

fn windsock(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_windsock"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("WINDSOCK_CONFIG")
        .env_remove("WINDSOCK_DB_URL")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn testdata(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn help_and_version() {
    let o = windsock(&["--help"]);
    assert!(o.status.success());
    let t = text(&o);
    for sub in ["run", "check", "config", "demo"] {
        assert!(t.contains(sub), "{sub} missing from --help:\n{t}");
    }
    // The version, and the revision and rustc it was built from.
    let o = windsock(&["--version"]);
    let v = text(&o);
    assert!(
        v.starts_with(&format!(
            "windsock {} (revision ",
            env!("CARGO_PKG_VERSION")
        )),
        "{v}"
    );
    assert!(v.contains(", rustc 1."), "{v}");
    let o = windsock(&["run", "--help"]);
    for flag in [
        "--web.listen-address",
        "--web.telemetry-path",
        "--log.level",
        "--log.format",
    ] {
        assert!(text(&o).contains(flag), "{flag} missing from run --help");
    }
    let o = windsock(&["check", "--help"]);
    assert!(
        text(&o).contains("69"),
        "check --help explains exit statuses"
    );
}

#[test]
fn example_config_is_valid() {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/windsock.example.toml");
    let o = windsock(&["config", "validate", "-c", example.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("configuration is valid"));
}

/// Each bad config exits 64 with a message naming the key.
#[test]
fn bad_configs_name_the_key() {
    let cases = [
        (
            "unknown_key.toml",
            &["server.listen_addr", "unknown field"][..],
        ),
        (
            "bad_duration.toml",
            &[
                "database.statement_timeout",
                "invalid duration",
                "5 parsecs",
            ][..],
        ),
        (
            "bad_url.toml",
            &["targets[0].url", "unsupported database scheme `oracle`"][..],
        ),
        ("bad_listen.toml", &["server.listen", "not an address"][..]),
        ("bad_type.toml", &["collection.max_concurrent_queries"][..]),
    ];
    for (file, needles) in cases {
        let o = windsock(&["config", "validate", "-c", &testdata(file)]);
        assert_eq!(o.status.code(), Some(64), "{file}: {}", text(&o));
        let t = text(&o);
        for n in needles {
            assert!(t.contains(n), "{file}: expected {n:?} in:\n{t}");
        }
        assert!(!t.contains("hunter2"), "{file}: password leaked:\n{t}");
    }
}

/// `run` with a bad config exits 64 before binding its port.
#[test]
fn run_with_bad_config_exits_before_binding() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let o = windsock(&[
        "run",
        "-c",
        &testdata("bad_duration.toml"),
        "--listen",
        &listen,
    ]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(!text(&o).contains("Listening"), "{}", text(&o));
}

#[test]
fn run_without_targets_is_a_config_error() {
    let o = windsock(&["run", "--listen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(text(&o).contains("no targets configured"), "{}", text(&o));
}

/// An unreachable DB: `check` exits 69 and never prints the password.
#[test]
fn check_unreachable_database() {
    let o = windsock(&[
        "check",
        "--db-url",
        "postgresql+psycopg2://airflow:hunter2@127.0.0.1:1/airflow",
    ]);
    assert_eq!(o.status.code(), Some(69), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("unreachable"), "{t}");
    assert!(t.contains("airflow:***@127.0.0.1:1"), "{t}");
    assert!(!t.contains("hunter2"), "{t}");
}

/// Settings come from the environment too, and env wins over the file.
#[test]
fn environment_overrides_file() {
    let o = Command::new(env!("CARGO_BIN_EXE_windsock"))
        .args(["config", "validate", "-c", &testdata("bad_listen.toml")])
        .env("WINDSOCK_SERVER__LISTEN", "127.0.0.1:19999")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("listen 127.0.0.1:19999"), "{}", text(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_windsock"))
        .args(["config", "validate"])
        .env("WINDSOCK_DATABASE__LOCK_TIMEOUT", "forever")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64));
    assert!(text(&o).contains("database.lock_timeout"), "{}", text(&o));
}

#[test]
fn yaml_config_with_two_targets() {
    let o = windsock(&["config", "validate", "-c", &testdata("good.yaml")]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("2 target(s)"), "{t}");
    assert!(
        t.contains("prod: mysql://windsock_ro@airflow-db:3306/airflow"),
        "{t}"
    );
    assert!(
        t.contains("dev: sqlite:////var/lib/airflow/airflow.db"),
        "{t}"
    );
}

/// A database that refuses connections is reported as such, not as a pool
/// that timed out.
#[test]
fn refused_connection_says_so() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for url in [
        format!("postgres://windsock@127.0.0.1:{port}/airflow"),
        format!("mysql://windsock@127.0.0.1:{port}/airflow"),
    ] {
        let o = windsock(&["check", "--db-url", &url]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(69), "{t}");
        assert!(t.to_ascii_lowercase().contains("connection refused"), "{t}");
        assert!(!t.contains("pool timed out"), "{t}");
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// `windsock check` with `envs` set and `args`; its output, after asserting
/// that every diagnostic ran (exit 0).
fn check_with(envs: &[(&str, &str)], args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_windsock"));
    cmd.arg("check")
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("WINDSOCK_CONFIG")
        .env_remove("WINDSOCK_DB_URL");
    for v in [
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    t
}

/// With no target configured, windsock watches the database Airflow's own
/// `AIRFLOW__DATABASE__SQL_ALCHEMY_CONN` names (the Helm chart's metadata
/// secret), or its `_CMD` form's output; an `AIRFLOW_CONN_*` connection in
/// JSON form works through `url_env`. No password is printed.
#[test]
fn urls_from_airflows_own_environment() {
    let db = block_on(common::TestDb::with_data(
        windsock::db::Dialect::Postgres,
        "3.1.8",
    ));
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let conn = format!("postgresql+psycopg2://postgres:not-needed-s3cret@127.0.0.1:5432/{name}");
    let t = check_with(&[("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", &conn)], &[]);
    assert!(t.contains("target default") && t.contains("3.1.8"), "{t}");
    assert!(!t.contains("not-needed-s3cret"), "{t}");
    let t = check_with(
        &[(
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD",
            &format!("printf '%s' '{conn}'"),
        )],
        &[],
    );
    assert!(t.contains("target default"), "{t}");
    let dir = std::env::temp_dir().join(format!("windsock-cli-conn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("w.toml");
    std::fs::write(
        &cfg,
        "[[targets]]\nenvironment = \"prod\"\nurl_env = \"AIRFLOW_CONN_METADATA\"\n",
    )
    .unwrap();
    let json = format!(
        r#"{{"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "password": "p@ss/w", "schema": "{name}"}}"#
    );
    let t = check_with(
        &[("AIRFLOW_CONN_METADATA", &json)],
        &["-c", cfg.to_str().unwrap()],
    );
    assert!(t.contains("target prod"), "{t}");
    assert!(!t.contains("p@ss") && !t.contains("p%40ss"), "{t}");
    let _ = std::fs::remove_dir_all(&dir);
}
