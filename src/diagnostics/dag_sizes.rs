//! Serialized DAG size and complexity, compressed DAGs included.
//!
//! Every run reads only metadata: `dag_id`, `dag_hash`, whether the DAG is
//! stored compressed, and the row key. Payloads are read only for DAGs whose hash changed
//! since the previous run (or that windsock has not seen yet), at most
//! [`FETCH_PER_RUN`] per run, in batches by primary key; compressed payloads
//! (`data_compressed`, a zlib stream written when Airflow's
//! `compress_serialized_dags` is on) are inflated in windsock, never in SQL.
//! From a payload windsock takes the bytes Airflow stored (the JSON text in
//! `data` plus the zlib stream in `data_compressed`: the same measure on
//! every dialect, whatever the database's own TOAST or page compression
//! makes of it), the JSON size after inflating, the task count and the
//! operator of each task. Airflow 3 keeps one row per DAG version: the
//! latest version is the one measured.
//!
//! Cost: one pass over `serialized_dag` metadata (milliseconds for
//! thousands of DAGs), plus the payloads of changed DAGs only.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    Aggregate, Category, DiagError, Diagnostic, Family, Meta, MetricKind, MetricSpec, Output,
};
use crate::airflow::{Capability, Schema};
use crate::db::{Cell, Db, Dialect};

/// Most payloads read in one run; the rest follow in the next runs, so a
/// cold start on thousands of multi-MB DAGs does not spike the DB.
pub(super) const FETCH_PER_RUN: usize = 200;
/// Payloads read per query.
const BATCH: usize = 20;
/// Distinct operators reported before the rest are counted as `other`.
const MAX_OPERATORS: usize = 50;

/// What windsock remembers of one DAG's payload.
#[derive(Debug, Clone)]
struct Parsed {
    hash: String,
    stored_bytes: usize,
    json_bytes: usize,
    tasks: usize,
    operators: BTreeMap<String, usize>,
}

#[derive(Debug, Default)]
struct State {
    parsed: HashMap<String, Parsed>,
    /// Hash changes seen per DAG since windsock started.
    changes: HashMap<String, u64>,
}

/// The `dag_sizes` diagnostic.
#[derive(Debug)]
pub(super) struct DagSizes {
    meta: Meta,
    metrics: Vec<Arc<MetricSpec>>,
    state: Mutex<State>,
}

fn spec(name: &'static str, help: &'static str, labels: &[&'static str]) -> Arc<MetricSpec> {
    Arc::new(MetricSpec::gauge(name, help, "").labels(labels))
}

pub(super) fn sizes() -> DagSizes {
    DagSizes {
        meta: Meta {
            name: "dag_sizes".into(),
            help: "Serialized DAG sizes (stored and JSON), task counts, operator mix, serialization churn".into(),
            source: "serialized_dag, dag_version".into(),
            cost: "size metadata of every DAG; payloads only for changed hashes, at most 200 per run".into(),
            category: Category::Dags,
            interval: Duration::from_secs(300),
            timeout: Some(Duration::from_secs(60)),
            requires: Vec::new(),
        },
        metrics: vec![
            spec(
                "airflow_serialized_dag_stored_bytes",
                "Bytes Airflow stored for the serialized DAG: the JSON text in data plus the zlib stream in data_compressed (before any compression of the database's own)",
                &["dag_id"],
            ),
            spec(
                "airflow_serialized_dag_json_bytes",
                "Bytes of the serialized DAG's JSON (after inflating compressed DAGs)",
                &["dag_id"],
            ),
            spec(
                "airflow_serialized_dag_compressed",
                "1 when the serialized DAG is stored compressed (data_compressed), else 0",
                &["dag_id"],
            ),
            spec("airflow_dag_tasks", "Tasks in the DAG's latest serialized version", &["dag_id"]),
            spec(
                "airflow_operator_tasks",
                "Tasks per operator class over all serialized DAGs",
                &["operator"],
            ),
            Arc::new(
                MetricSpec::counter(
                    "airflow_dag_serialization_changes",
                    "Changes of a DAG's serialized hash that windsock observed since it started",
                    "",
                )
                .labels(&["dag_id"])
                .merge(Aggregate::Sum),
            ),
        ],
        state: Mutex::new(State::default()),
    }
}

/// The metadata query: one row per DAG (its latest version on Airflow 3).
pub(super) fn metadata_sql(schema: &Schema) -> String {
    let compressed = "CASE WHEN s.data_compressed IS NULL THEN 0 ELSE 1 END";
    if schema.has(Capability::DagVersion) && schema.has_column("serialized_dag", "dag_version_id") {
        format!(
            "SELECT s.dag_id AS dag_id, s.dag_hash AS dag_hash, \
                    {compressed} AS compressed, s.id AS row_id \
             FROM serialized_dag s \
             JOIN dag_version v ON v.id = s.dag_version_id \
             JOIN (SELECT dag_id, MAX(version_number) AS n FROM dag_version GROUP BY dag_id) l \
               ON l.dag_id = v.dag_id AND l.n = v.version_number"
        )
    } else {
        format!(
            "SELECT s.dag_id AS dag_id, s.dag_hash AS dag_hash, \
                    {compressed} AS compressed, s.dag_id AS row_id \
             FROM serialized_dag s"
        )
    }
}

pub(super) fn payload_sql(schema: &Schema, n: usize, ph: &dyn Fn(usize) -> String) -> String {
    let key = if schema.has_column("serialized_dag", "id") {
        "id"
    } else {
        "dag_id"
    };
    let pg = schema.dialect == Dialect::Postgres;
    // `json` keeps the text Airflow wrote; `::text` returns it as is.
    let data = if pg { "data::text" } else { "data" };
    let marks: Vec<String> = (1..=n)
        .map(|i| match (pg, key) {
            // Airflow 3's serialized_dag.id is a native uuid on PostgreSQL;
            // a text parameter must be cast to compare with it (and keep the
            // primary key usable).
            (true, "id") => format!("CAST({} AS uuid)", ph(i)),
            _ => ph(i),
        })
        .collect();
    format!(
        "SELECT {key} AS row_id, {data} AS data, data_compressed FROM serialized_dag \
         WHERE {key} IN ({})",
        marks.join(", ")
    )
}

/// Bytes Airflow stored: the `data` text (unless NULL) plus the
/// `data_compressed` bytes.
fn stored_bytes(data: &Cell, compressed: &Cell) -> usize {
    let len = |c: &Cell| match c {
        Cell::Text(t) => t.len(),
        Cell::Bytes(b) => b.len(),
        _ => 0,
    };
    len(data) + len(compressed)
}

/// The JSON text of a payload: `data` unless it is NULL or JSON `null`,
/// else `data_compressed` inflated.
pub(super) fn payload_json(data: &Cell, compressed: &Cell) -> Result<String, String> {
    match data {
        Cell::Text(t) if t.trim() != "null" && !t.is_empty() => return Ok(t.clone()),
        Cell::Bytes(b) if b.as_slice() != b"null" && !b.is_empty() => {
            return String::from_utf8(b.clone()).map_err(|e| e.to_string());
        }
        _ => {}
    }
    let bytes = match compressed {
        Cell::Bytes(b) => b,
        Cell::Null => return Err("neither data nor data_compressed is set".into()),
        other => return Err(format!("data_compressed has an unexpected type: {other:?}")),
    };
    inflate(bytes, MAX_INFLATED)
}

/// The most a compressed serialized DAG may inflate to (a zlib bomb costs
/// this much memory at most; Airflow's largest real DAGs are tens of MiB).
const MAX_INFLATED: u64 = 256 * 1024 * 1024;

/// Inflates zlib `bytes` as UTF-8 text of at most `cap` bytes.
fn inflate(bytes: &[u8], cap: u64) -> Result<String, String> {
    let mut out = String::new();
    flate2::read::ZlibDecoder::new(bytes)
        .take(cap + 1)
        .read_to_string(&mut out)
        .map_err(|e| format!("cannot inflate data_compressed: {e}"))?;
    if out.len() as u64 > cap {
        return Err(format!(
            "data_compressed inflates to more than {} MiB; not read further",
            cap / (1024 * 1024)
        ));
    }
    Ok(out)
}

/// Task count and operators of a serialized DAG (format 1 of Airflow 2,
/// formats 2 and 3 of Airflow 3, where each task is wrapped in `__var`).
fn parse(json: &str) -> Result<(usize, BTreeMap<String, usize>), String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let tasks = v
        .pointer("/dag/tasks")
        .and_then(|t| t.as_array())
        .ok_or("no dag.tasks array")?;
    let mut ops = BTreeMap::new();
    for t in tasks {
        let t = t.get("__var").unwrap_or(t);
        let op = t
            .get("_task_type")
            .or_else(|| t.get("task_type"))
            .and_then(|o| o.as_str())
            .unwrap_or("unknown");
        *ops.entry(op.to_owned()).or_insert(0) += 1;
    }
    Ok((tasks.len(), ops))
}

impl DagSizes {
    fn empty_families(&self) -> Vec<Family> {
        Family::zip(&self.metrics, vec![Vec::new(); self.metrics.len()])
    }
}

#[async_trait]
impl Diagnostic for DagSizes {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn metrics(&self) -> &[Arc<MetricSpec>] {
        &self.metrics
    }

    fn reset(&self) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = State::default();
    }

    fn explain_sql(&self, schema: &Schema) -> Vec<String> {
        vec![
            metadata_sql(schema),
            // A literal that is a valid uuid and a valid dag_id.
            payload_sql(schema, 2, &|n| {
                format!("'00000000-0000-0000-0000-00000000000{n}'")
            }),
        ]
    }

    async fn run(&self, db: &Db, schema: &Schema, timeout: Duration) -> Result<Output, DiagError> {
        let started = Instant::now();
        let meta = db.query(&metadata_sql(schema), timeout).await?;
        if meta.rows.is_empty() {
            // No serialized DAGs (columns are unknown without rows).
            self.reset();
            return Ok(Output {
                families: self.empty_families(),
                rows: 0,
            });
        }
        let col = |n: &str| {
            meta.column(n)
                .ok_or_else(|| DiagError::Mapping(format!("metadata column {n} missing")))
        };
        let (c_dag, c_hash, c_comp, c_row) = (
            col("dag_id")?,
            col("dag_hash")?,
            col("compressed")?,
            col("row_id")?,
        );
        // Which payloads to read: new or changed hashes, oldest first.
        let mut wanted: Vec<(String, String, String)> = Vec::new();
        {
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            for r in &meta.rows {
                let dag = r[c_dag].as_label();
                let hash = r[c_hash].as_label();
                if st.parsed.get(&dag).is_none_or(|p| p.hash != hash) {
                    wanted.push((r[c_row].as_label(), dag, hash));
                }
            }
        }
        wanted.truncate(FETCH_PER_RUN);
        let mut fetched: Vec<(String, String, Parsed)> = Vec::new();
        let mut rows = meta.rows.len();
        for chunk in wanted.chunks(BATCH) {
            let left = timeout.saturating_sub(started.elapsed());
            if left < Duration::from_millis(100) {
                break;
            }
            let ids: Vec<String> = chunk.iter().map(|(id, _, _)| id.clone()).collect();
            let res = db
                .query_bind(
                    &payload_sql(schema, ids.len(), &|i| db.placeholder(i)),
                    &ids,
                    left,
                )
                .await?;
            rows += res.rows.len();
            let (p_id, p_data, p_comp) = (
                res.column("row_id").unwrap_or(0),
                res.column("data").unwrap_or(1),
                res.column("data_compressed").unwrap_or(2),
            );
            for r in &res.rows {
                let id = r[p_id].as_label();
                let Some((_, dag, hash)) = chunk.iter().find(|(i, _, _)| *i == id) else {
                    continue;
                };
                let stored = stored_bytes(&r[p_data], &r[p_comp]);
                let parsed = payload_json(&r[p_data], &r[p_comp]).and_then(|json| {
                    parse(&json).map(|(tasks, operators)| Parsed {
                        hash: hash.clone(),
                        stored_bytes: stored,
                        json_bytes: json.len(),
                        tasks,
                        operators,
                    })
                });
                match parsed {
                    Ok(p) => fetched.push((dag.clone(), hash.clone(), p)),
                    Err(error) => {
                        tracing::warn!(dag_id = %dag, %error, "Cannot read a serialized DAG; it is reported by size only.")
                    }
                }
            }
        }

        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for (dag, hash, p) in fetched {
            if let Some(old) = st.parsed.get(&dag)
                && old.hash != hash
            {
                *st.changes.entry(dag.clone()).or_insert(0) += 1;
            }
            st.changes.entry(dag.clone()).or_insert(0);
            st.parsed.insert(dag, p);
        }
        let present: HashSet<String> = meta.rows.iter().map(|r| r[c_dag].as_label()).collect();
        st.parsed.retain(|d, _| present.contains(d));
        st.changes.retain(|d, _| present.contains(d));

        let mut samples: Vec<Vec<(Vec<String>, f64)>> = vec![Vec::new(); self.metrics.len()];
        let mut operators: BTreeMap<String, usize> = BTreeMap::new();
        for r in &meta.rows {
            let dag = r[c_dag].as_label();
            samples[2].push((vec![dag.clone()], r[c_comp].as_f64().unwrap_or(0.0)));
            if let Some(p) = st.parsed.get(&dag) {
                samples[0].push((vec![dag.clone()], p.stored_bytes as f64));
                samples[1].push((vec![dag.clone()], p.json_bytes as f64));
                samples[3].push((vec![dag.clone()], p.tasks as f64));
                for (op, n) in &p.operators {
                    *operators.entry(op.clone()).or_insert(0) += n;
                }
            }
            if let Some(n) = st.changes.get(&dag) {
                samples[5].push((vec![dag], *n as f64));
            }
        }
        let mut ops: Vec<(String, usize)> = operators.into_iter().collect();
        ops.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let other: usize = ops.iter().skip(MAX_OPERATORS).map(|(_, n)| n).sum();
        ops.truncate(MAX_OPERATORS);
        if other > 0 {
            ops.push(("other".to_owned(), other));
        }
        samples[4] = ops.into_iter().map(|(o, n)| (vec![o], n as f64)).collect();

        let families = Family::zip(&self.metrics, samples);
        debug_assert!(self.metrics[5].kind == MetricKind::Counter);
        Ok(Output { families, rows })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn a_zlib_bomb_stops_at_the_cap() {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        // 64 MiB of spaces compress to well under 1 MiB.
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..64 {
            z.write_all(&chunk).unwrap();
        }
        let bomb = z.finish().unwrap();
        assert!(bomb.len() < 1 << 20, "{}", bomb.len());
        let err = inflate(&bomb, 8 << 20).unwrap_err();
        assert!(err.contains("more than 8 MiB"), "{err}");
        assert_eq!(inflate(&bomb, 64 << 20).unwrap().len(), 64 << 20);
    }

    #[test]
    fn parses_both_formats_and_compressed_payloads() {
        let v1 = r#"{"__version":1,"dag":{"tasks":[{"task_id":"a","_task_type":"BashOperator"},{"task_id":"b","_task_type":"BashOperator"}]}}"#;
        assert_eq!(
            parse(v1).unwrap(),
            (2, BTreeMap::from([("BashOperator".into(), 2)]))
        );
        let v2 = r#"{"__version":2,"dag":{"tasks":[{"__var":{"task_id":"a","_task_type":"PythonOperator"},"__type":"operator"}]}}"#;
        assert_eq!(
            parse(v2).unwrap().1,
            BTreeMap::from([("PythonOperator".into(), 1)])
        );
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(v1.as_bytes()).unwrap();
        let z = enc.finish().unwrap();
        // Airflow leaves `data` NULL (or JSON null on SQLite) when compressing.
        for data in [Cell::Null, Cell::Text("null".into())] {
            assert_eq!(payload_json(&data, &Cell::Bytes(z.clone())).unwrap(), v1);
        }
        assert!(payload_json(&Cell::Null, &Cell::Null).is_err());
        assert!(parse("{}").is_err());
    }
}
