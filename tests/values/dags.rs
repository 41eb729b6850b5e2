//! DAG definitions: states, import errors, owners, serialized sizes.

use std::collections::BTreeMap;
use std::io::Read as _;

use crate::harness::{Fx, each, family, num, settings, text};
use windsock::db::Dialect;

/// `dag_states`: active, paused and stale DAGs, classified here from the
/// rows (Airflow 2's `is_active = false` and Airflow 3's `is_stale = true`
/// are stale whether paused or not).
#[tokio::test]
async fn dag_states() {
    each(&settings(), async |fx: &Fx| {
        let stale_col = if fx.v3() { "is_stale" } else { "is_active" };
        let rows = fx
            .rows(&format!("SELECT is_paused, {stale_col} FROM dag"))
            .await;
        let (mut active, mut paused, mut stale) = (0.0, 0.0, 0.0);
        for r in &rows.rows {
            let flag = num(&r[1]).unwrap_or(0.0) != 0.0;
            let is_stale = if fx.v3() { flag } else { !flag };
            if is_stale {
                stale += 1.0;
            } else if num(&r[0]).unwrap_or(0.0) != 0.0 {
                paused += 1.0;
            } else {
                active += 1.0;
            }
        }
        let got = fx.run("dag_states").await;
        let at = fx.at();
        assert_eq!(got["airflow_dags{state=active}"], active, "{at}");
        assert_eq!(got["airflow_dags{state=paused}"], paused, "{at}");
        assert_eq!(got["airflow_dags{state=stale}"], stale, "{at}");
        assert!(active + paused >= 9.0, "{at}: the fixture's ws_* DAGs");
    })
    .await;
}

/// `import_errors`: the broken DAG files the generator recorded.
#[tokio::test]
async fn import_errors() {
    each(&settings(), async |fx: &Fx| {
        let want = fx.facts["import_errors"].as_array().unwrap().len() as f64;
        assert!(want >= 1.0, "{}", fx.at());
        let got = fx.run("import_errors").await;
        assert_eq!(got["airflow_dag_import_errors{}"], want, "{}", fx.at());
    })
    .await;
}

/// `dag_owners` (off by default): one info series per active DAG with its
/// owners text.
#[tokio::test]
async fn dag_owners() {
    let mut s = settings();
    s.diagnostics.overrides.insert(
        "dag_owners".into(),
        windsock::config::DiagnosticOverride {
            enabled: Some(true),
            ..Default::default()
        },
    );
    each(&s, async |fx: &Fx| {
        let active = if fx.v3() {
            format!("is_stale = {}", fx.bool(false))
        } else {
            format!("is_active = {}", fx.bool(true))
        };
        let rows = fx
            .rows(&format!("SELECT dag_id, owners FROM dag WHERE {active}"))
            .await;
        let got = fx.run("dag_owners").await;
        let owners = family(&got, "airflow_dag_owner");
        assert_eq!(owners.len(), rows.rows.len(), "{}", fx.at());
        for r in &rows.rows {
            let key = format!("dag_id={},owners={}", text(&r[0]), text(&r[1]));
            assert_eq!(owners.get(key.as_str()), Some(&1.0), "{}: {key}", fx.at());
        }
    })
    .await;
}

/// What the test itself reads from one serialized DAG's stored payload.
#[derive(Debug, Default)]
struct Payload {
    stored: usize,
    json: usize,
    tasks: usize,
    compressed: bool,
    operators: BTreeMap<String, usize>,
}

/// The latest serialized version of every DAG, decoded here: `data` as
/// text, else `data_compressed` inflated (a zlib stream).
async fn payloads(fx: &Fx) -> BTreeMap<String, Payload> {
    let data = if fx.dialect == Dialect::Postgres {
        "s.data::text"
    } else {
        "s.data"
    };
    let latest = if fx.v3() {
        "JOIN dag_version v ON v.id = s.dag_version_id \
         WHERE v.version_number = (SELECT MAX(version_number) FROM dag_version w \
                                   WHERE w.dag_id = s.dag_id)"
    } else {
        ""
    };
    let rows = fx
        .rows(&format!(
            "SELECT s.dag_id, {data}, s.data_compressed FROM serialized_dag s {latest}"
        ))
        .await;
    let mut out = BTreeMap::new();
    for r in &rows.rows {
        let text_data = r[1].as_label();
        let zipped = match &r[2] {
            windsock::db::Cell::Bytes(b) => Some(b.clone()),
            _ => None,
        };
        let json = match (&zipped, text_data.as_str()) {
            (Some(z), "" | "null") => {
                let mut s = String::new();
                flate2::read::ZlibDecoder::new(z.as_slice())
                    .read_to_string(&mut s)
                    .unwrap();
                s
            }
            _ => text_data.clone(),
        };
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let tasks = v["dag"]["tasks"].as_array().unwrap();
        let mut operators = BTreeMap::new();
        for t in tasks {
            let t = t.get("__var").unwrap_or(t);
            // `_task_type` on Airflow 2, `task_type` on 3.x.
            let op = t.get("_task_type").or_else(|| t.get("task_type"));
            let op = op.and_then(|o| o.as_str()).unwrap_or("unknown").to_owned();
            *operators.entry(op).or_insert(0) += 1;
        }
        let raw_len = if matches!(r[1], windsock::db::Cell::Null) {
            0
        } else {
            text_data.len()
        };
        out.insert(
            text(&r[0]),
            Payload {
                stored: raw_len + zipped.as_ref().map_or(0, Vec::len),
                json: json.len(),
                tasks: tasks.len(),
                compressed: zipped.is_some(),
                operators,
            },
        );
    }
    out
}

/// `dag_sizes`: per DAG the stored bytes (the same measure on every
/// dialect: data text plus data_compressed bytes), JSON bytes, task count
/// and compression, and the operator mix, against the payloads decoded
/// here; the fixture holds compressed and uncompressed DAGs side by side.
#[tokio::test]
async fn dag_sizes() {
    each(&settings(), async |fx: &Fx| {
        let want = payloads(fx).await;
        let got = fx.run("dag_sizes").await;
        let at = fx.at();
        let mut operators: BTreeMap<String, usize> = BTreeMap::new();
        for (dag, p) in &want {
            let g = |m: &str| got.get(&format!("{m}{{dag_id={dag}}}")).copied();
            assert_eq!(
                g("airflow_serialized_dag_stored_bytes"),
                Some(p.stored as f64),
                "{at} {dag}"
            );
            assert_eq!(
                g("airflow_serialized_dag_json_bytes"),
                Some(p.json as f64),
                "{at} {dag}"
            );
            assert_eq!(g("airflow_dag_tasks"), Some(p.tasks as f64), "{at} {dag}");
            let z = f64::from(u8::from(p.compressed));
            assert_eq!(
                g("airflow_serialized_dag_compressed"),
                Some(z),
                "{at} {dag}"
            );
            for (op, n) in &p.operators {
                *operators.entry(op.clone()).or_insert(0) += n;
            }
        }
        for (op, n) in operators {
            assert_eq!(
                got[&format!("airflow_operator_tasks{{operator={op}}}")],
                n as f64,
                "{at}"
            );
        }
        // The generator's record: both kinds present.
        let facts = &fx.facts["serialized"];
        for (kind, z) in [("compressed", true), ("uncompressed", false)] {
            let dags = facts[kind].as_array().unwrap();
            assert!(!dags.is_empty(), "{at}: no {kind} DAG");
            for d in dags {
                assert_eq!(want[d.as_str().unwrap()].compressed, z, "{at} {d}");
            }
        }
        assert_eq!(want["ws_mapped"].tasks, 1, "{at}");
        assert_eq!(want["ws_fail"].tasks, 3, "{at}");
    })
    .await;
}
