//! Golden exposition of the demo database: every series windsock exports
//! for the seeded demo history, in the classic text format, compared with
//! `tests/golden/demo.prom` (regenerate with `UPDATE_GOLDEN=1 cargo test
//! --test golden`). Values in seconds are masked as `<t>`: timestamps and
//! ages move with the clock, and durations are differences of timestamps
//! that SQLite's julianday() recovers with sub-millisecond rounding that
//! depends on the absolute time; so is the trend ratio that splits the
//! window at "now". The metadata DB's own figures (`airflow_db_*`: sizes,
//! max ids) are masked too: the demo writes audit-log rows for tasks of the
//! last two days, a count that shifts with the time of day. Every other
//! value (counts, states, ratios, DAG sizes) is exact. The unmasked text
//! must pass `promtool check metrics`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use windsock::config::{DiagnosticsSettings, Settings};
use windsock::db::url::DbUrl;
use windsock::metrics::{Exposition, Store};
use windsock::runner::{RunResult, TargetRunner};

fn masked(name: &str, labels: &str) -> bool {
    name.ends_with("_seconds")
        || name.starts_with("process_")
        || name.starts_with("airflow_db_")
        || name == "airflow_dag_run_duration_trend_ratio"
        || (name == "airflow_concurrency_peak" && labels.contains("period=\"1h\""))
}

fn mask(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with('#') {
            out.push_str(line);
        } else {
            let (series, _) = line.rsplit_once(' ').unwrap();
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            if masked(name, labels) {
                out.push_str(series);
                out.push_str(" <t>");
            } else {
                out.push_str(line);
            }
        }
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn demo_exposition_matches_golden() {
    let dir = std::env::temp_dir().join(format!("windsock-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("demo.db");
    windsock::demo::create(&path, 42).await.unwrap();
    // A window longer than the demo's 21 days of history: no run sits at a
    // window boundary that moves with the clock.
    let settings = Settings {
        diagnostics: DiagnosticsSettings {
            window: Duration::from_secs(30 * 86_400),
            ..DiagnosticsSettings::default()
        },
        ..Settings::default()
    };
    let store = Arc::new(Store::new(["demo"]));
    let r = TargetRunner {
        environment: "demo".into(),
        db: windsock::db::Db::new(&DbUrl::sqlite_file(&path), &settings.database).unwrap(),
        plan: Arc::new(windsock::diagnostics::registry(&settings).unwrap()),
        store: store.clone(),
        settings: settings.collection.clone(),
        limits: Arc::new(windsock::metrics::limits::Limits::default()),
    };
    let schema = r.detect().await.unwrap();
    for p in r.plan.iter() {
        let res = r.run_one(p, &schema).await;
        assert!(
            matches!(res, RunResult::Ok(_) | RunResult::Skipped(_)),
            "{res:?}"
        );
    }
    r.db.close().await;
    let text = Exposition::new(store).classic();
    // windsock's version and build are not part of the golden file.
    let text = text
        .replace(
            &format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
            "version=\"<v>\"",
        )
        .replace(
            &format!("revision=\"{}\"", windsock::REVISION),
            "revision=\"<r>\"",
        )
        .replace(
            &format!("rustc_version=\"{}\"", env!("WINDSOCK_RUSTC_VERSION")),
            "rustc_version=\"<rustc>\"",
        )
        .replace(
            &format!("target=\"{}\"", env!("WINDSOCK_TARGET")),
            "target=\"<target>\"",
        );

    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is required; .ci/run installs it");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let golden_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/demo.prom");
    let got = mask(&text);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden_path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden_path).unwrap_or_default();
    if got != want {
        let diff: Vec<String> = got
            .lines()
            .zip(want.lines())
            .filter(|(a, b)| a != b)
            .take(10)
            .map(|(a, b)| format!("got:  {a}\nwant: {b}"))
            .collect();
        panic!(
            "exposition differs from tests/golden/demo.prom ({} vs {} lines); first differences:\n{}\n\
             regenerate with UPDATE_GOLDEN=1 cargo test --test golden if the change is intended",
            got.lines().count(),
            want.lines().count(),
            diff.join("\n")
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
