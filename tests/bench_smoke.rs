//! `windsock bench` runs and reports what docs/benchmarks.md relies on
//! (the numbers themselves are measured by the benchmark, not asserted).

use std::process::Command;

fn bench(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_windsock"))
        .arg("bench")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn scrape_reports_latency_throughput_and_memory() {
    let v = bench(&[
        "scrape",
        "--series",
        "2000",
        "--concurrency",
        "4",
        "--duration",
        "1s",
    ]);
    assert_eq!(v["series"], 2000);
    assert!(v["requests"].as_u64().unwrap() > 10, "{v}");
    assert!(v["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    assert!(v["rss_kb"]["peak"].as_u64().unwrap() > 0);
    // Every series is in the (gzip) body.
    assert!(v["body_bytes_gzip"].as_u64().unwrap() > 2000, "{v}");
}

#[tokio::test]
async fn cycle_times_every_diagnostic() {
    let dir = std::env::temp_dir().join(format!("windsock-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("demo.db");
    windsock::demo::create(&db, 5).await.unwrap();
    let url = format!("sqlite:///{}", db.display());
    let v = bench(&[
        "cycle",
        "--db-url",
        &url,
        "--cycles",
        "1",
        "--between",
        "true",
    ]);
    let cycles = v["cycles"].as_array().unwrap();
    assert_eq!(cycles.len(), 3, "cold, idle steady, steady after --between");
    assert_eq!(cycles[0]["kind"], "cold");
    let names: Vec<&str> = cycles[0]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["diagnostic"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"run_history") && names.contains(&"zombie_tasks"),
        "{names:?}"
    );
    // The steady cycle reads far fewer rows than the cold one.
    let rows = |c: &serde_json::Value| {
        c["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["diagnostic"] == "run_history")
            .map(|d| d["rows"].as_u64().unwrap())
            .sum::<u64>()
    };
    assert!(
        rows(&cycles[1]) * 10 < rows(&cycles[0]),
        "{} vs {}",
        rows(&cycles[1]),
        rows(&cycles[0])
    );
    let _ = std::fs::remove_dir_all(&dir);
}
