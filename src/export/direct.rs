//! Direct mode: windsock reads each table itself, page by page.
//!
//! One page is `SELECT <columns> FROM t WHERE <window> AND (key) > (last)
//! ORDER BY key LIMIT n`, through the read-only [`Db`] (read-only
//! transaction, statement timeout), so the cost of a page does not grow
//! with the table and memory holds one page at most. Pages shrink for wide
//! rows (serialized DAGs) to stay under [`PAGE_BYTES`].

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::encode::RowWriter;
use super::mask::{Action, POLICY};
use super::parquet::ParquetWriter;
use super::sink::Sink;
use super::{EXCLUDED, TableResult, TableSpec, Window, spec_for};
use crate::airflow::Schema;
use crate::config::ExportFormat;
use crate::db::{Cell, Db, DbError, Dialect};

/// Target size of one page in memory.
pub const PAGE_BYTES: usize = 16 * 1024 * 1024;

/// What a direct export needs besides the destination.
#[derive(Debug, Clone)]
pub struct Options {
    /// Output format.
    pub format: ExportFormat,
    /// Rows per page to start with.
    pub page_rows: usize,
    /// Deadline of one page query.
    pub timeout: Duration,
    /// Column allowlists by table.
    pub columns: std::collections::BTreeMap<String, Vec<String>>,
}

fn quote(d: Dialect, ident: &str) -> String {
    match d {
        Dialect::MySql => format!("`{ident}`"),
        Dialect::Postgres | Dialect::Sqlite => format!("\"{ident}\""),
    }
}

/// The select expression of a column: timestamps as ISO-8601 text, types
/// the decoder does not know as text, everything else as is.
fn select_expr(d: Dialect, col: &str, ty: &str) -> String {
    let c = quote(d, col);
    let ty = ty.to_ascii_lowercase();
    // `numeric(10,2)` is a numeric.
    let base = ty.split('(').next().unwrap_or("");
    let expr = match d {
        Dialect::Postgres => match base {
            "timestamp with time zone" => {
                format!("to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
            }
            "timestamp without time zone" => {
                format!("to_char({c}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US')")
            }
            "smallint" | "integer" | "bigint" | "real" | "double precision" | "numeric"
            | "boolean" | "text" | "character varying" | "character" | "bytea" => c.clone(),
            _ => format!("CAST({c} AS text)"),
        },
        Dialect::MySql => match base {
            "datetime" | "timestamp" => format!("DATE_FORMAT({c}, '%Y-%m-%dT%H:%i:%s.%f')"),
            "date" | "time" | "year" | "bit" | "set" => format!("CAST({c} AS CHAR)"),
            _ => c.clone(),
        },
        Dialect::Sqlite => c.clone(),
    };
    format!("{expr} AS {c}")
}

/// The columns exported of a table: not the policy's dropped ones, only
/// the allowlisted ones when `[export] columns` lists the table; the key
/// and the window column always (pagination and the window need them).
fn kept_columns(
    spec: &TableSpec,
    cols: Vec<(String, String)>,
    allow: Option<&Vec<String>>,
) -> Vec<(String, String)> {
    cols.into_iter()
        .filter(|(c, t)| {
            let needed = spec.key.contains(c) || spec.window_column.as_ref() == Some(c);
            needed
                || (POLICY.action_for(&spec.table, c, is_binary_type(t)) != Some(Action::Drop)
                    && allow.is_none_or(|a| a.contains(c)))
        })
        .collect()
}

/// Applies the policy's masks to a page (rows in column order).
fn mask(rows: &mut [Vec<Cell>], masks: &[Option<Action>]) {
    for row in rows {
        for (cell, action) in row.iter_mut().zip(masks) {
            if let Some(a) = action {
                *cell = POLICY.apply(*a, std::mem::replace(cell, Cell::Null));
            }
        }
    }
}

/// Whether the catalog calls a column text (MySQL's `_bin` collations, which
/// Airflow gives its ids, make the driver report such columns as binary).
fn is_text_type(ty: &str) -> bool {
    let ty = ty.to_ascii_lowercase();
    let base = ty.split('(').next().unwrap_or("").trim();
    matches!(
        base,
        "varchar"
            | "char"
            | "text"
            | "tinytext"
            | "mediumtext"
            | "longtext"
            | "enum"
            | "set"
            | "character varying"
            | "character"
            | "json"
    )
}

/// Whether the catalog calls a column binary (pickles, compressed data).
fn is_binary_type(ty: &str) -> bool {
    super::parquet::kind_of(ty) == super::parquet::Kind::Binary
}

/// Text columns that arrived as bytes become text again (hex only for
/// bytes that are not UTF-8), so `dag_id` is exported as `dag_id`, not its
/// hex, on MySQL too.
fn texts_as_text(rows: &mut [Vec<Cell>], text: &[bool]) {
    for row in rows {
        for (cell, is_text) in row.iter_mut().zip(text) {
            if *is_text && let Cell::Bytes(b) = cell {
                *cell = match String::from_utf8(std::mem::take(b)) {
                    Ok(s) => Cell::Text(s),
                    Err(e) => Cell::Bytes(e.into_bytes()),
                };
            }
        }
    }
}

/// A window bound as the dialect compares it to a timestamp column.
fn ts_param(d: Dialect, p: &str) -> String {
    match d {
        Dialect::Postgres => format!("CAST({p} AS timestamptz)"),
        Dialect::MySql | Dialect::Sqlite => p.to_owned(),
    }
}

/// The bound text of a window edge: `YYYY-MM-DD HH:MM:SS` (UTC).
fn bound(secs: i64) -> String {
    super::iso(secs)
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_owned()
}

async fn columns(
    db: &Db,
    table: &str,
    timeout: Duration,
) -> Result<Vec<(String, String)>, DbError> {
    let sql = match db.dialect() {
        // Decimals with their (p,s), MySQL's tinyint(1) as boolean: what
        // Parquet needs for its logical types (parquet::kind_of).
        Dialect::Postgres => {
            "SELECT column_name, CASE WHEN data_type = 'numeric' AND numeric_precision IS NOT NULL \
             THEN 'numeric(' || numeric_precision || ',' || numeric_scale || ')' \
             ELSE data_type END FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
        }
        Dialect::MySql => {
            "SELECT column_name, CASE WHEN column_type LIKE 'tinyint(1)%' THEN 'boolean' \
             WHEN data_type IN ('decimal', 'numeric') THEN column_type ELSE data_type END \
             FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position"
        }
        Dialect::Sqlite => "SELECT name, type FROM pragma_table_info(?) ORDER BY cid",
    };
    let rows = db.query_bind(sql, &[table.to_owned()], timeout).await?;
    Ok(rows
        .rows
        .iter()
        .map(|r| (r[0].as_label(), r[1].as_label()))
        .collect())
}

/// Exports the tables into `sink`; returns one result per table.
pub async fn export(
    db: &Db,
    schema: &Schema,
    tables: &[String],
    window: Window,
    opts: &Options,
    sink: &Sink,
) -> Vec<TableResult> {
    let tty = std::io::stderr().is_terminal();
    let mut out = Vec::with_capacity(tables.len());
    for (i, table) in tables.iter().enumerate() {
        let base = |status: &str, spec: Option<&TableSpec>| TableResult {
            table: table.clone(),
            status: status.to_owned(),
            rows: None,
            bytes: None,
            window_column: spec.and_then(|s| s.window_column.clone()),
            mode: if spec.is_some_and(|s| s.window_column.is_none()) {
                "full"
            } else {
                "window"
            }
            .to_owned(),
            path: None,
            reason: None,
            error: None,
        };
        if let Some((_, why)) = EXCLUDED.iter().find(|(t, _)| t == table) {
            out.push(TableResult {
                reason: Some((*why).to_owned()),
                ..base("excluded", None)
            });
            continue;
        }
        let spec = match spec_for(table, schema) {
            Some(s) if schema.has_table(table) => s,
            _ => {
                info!(table = %table, "Export: the table is not in this Airflow schema.");
                out.push(base("missing", None));
                continue;
            }
        };
        let started = Instant::now();
        let bar = progress_bar(tty, i, tables.len(), table);
        let result =
            export_table(db, &spec, window, opts, sink, |rows| bar.set_position(rows)).await;
        bar.finish_and_clear();
        match result {
            Ok((rows, bytes, path)) => {
                info!(
                    table = %table,
                    rows,
                    bytes,
                    seconds = started.elapsed().as_secs_f64(),
                    "Export: table written."
                );
                out.push(TableResult {
                    rows: Some(rows),
                    bytes: Some(bytes),
                    path: Some(path),
                    ..base("exported", Some(&spec))
                });
            }
            Err(e) => {
                warn!(table = %table, error = %e, "Export: table failed.");
                out.push(TableResult {
                    error: Some(e.to_string()),
                    ..base("failed", Some(&spec))
                });
            }
        }
    }
    out
}

/// The progress of one table on a terminal (rows so far, rate, time),
/// cleared when the table is done, whose log line follows; nothing when
/// stderr is not a terminal (the log lines alone).
fn progress_bar(tty: bool, i: usize, n: usize, table: &str) -> indicatif::ProgressBar {
    if !tty {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner().with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{prefix}] {msg}: {human_pos} rows ({per_sec}, {elapsed})",
        )
        .expect("a valid template"),
    );
    bar.set_prefix(format!("{}/{n}", i + 1));
    bar.set_message(table.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

type Out = std::io::BufWriter<std::fs::File>;

/// A table's file being written, in the chosen format.
enum TableWriter {
    Text(RowWriter<Out>),
    Parquet(ParquetWriter<Out>),
}

impl TableWriter {
    fn write_page(&mut self, rows: &[Vec<Cell>]) -> std::io::Result<()> {
        match self {
            TableWriter::Text(w) => rows.iter().try_for_each(|r| w.write(r)),
            TableWriter::Parquet(w) => w.write_page(rows),
        }
    }

    fn rows(&self) -> u64 {
        match self {
            TableWriter::Text(w) => w.rows(),
            TableWriter::Parquet(w) => w.rows(),
        }
    }

    fn finish(self) -> std::io::Result<Out> {
        match self {
            TableWriter::Text(w) => w.finish(),
            TableWriter::Parquet(w) => w.finish(),
        }
    }
}

/// Why one table could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Writing failed.
    #[error("writing: {0}")]
    Io(#[from] std::io::Error),
    /// The key columns are not in the table.
    #[error("key column `{0}` is not in the table")]
    Key(String),
}

async fn export_table(
    db: &Db,
    spec: &TableSpec,
    window: Window,
    opts: &Options,
    sink: &Sink,
    progress: impl Fn(u64),
) -> Result<(u64, u64, String), TableError> {
    let d = db.dialect();
    let cols = kept_columns(
        spec,
        columns(db, &spec.table, opts.timeout).await?,
        opts.columns.get(&spec.table),
    );
    let masks: Vec<Option<Action>> = cols
        .iter()
        .map(|(c, t)| POLICY.action_for(&spec.table, c, is_binary_type(t)))
        .collect();
    let key_idx: Vec<usize> = spec
        .key
        .iter()
        .map(|k| {
            cols.iter()
                .position(|(c, _)| c == k)
                .ok_or_else(|| TableError::Key(k.clone()))
        })
        .collect::<Result<_, _>>()?;
    let select: Vec<String> = cols.iter().map(|(c, t)| select_expr(d, c, t)).collect();
    let names: Vec<String> = cols.iter().map(|(c, _)| c.clone()).collect();
    let text_cols: Vec<bool> = cols.iter().map(|(_, t)| is_text_type(t)).collect();
    let file = std::io::BufWriter::new(sink.create_part(&spec.table, opts.format.extension())?);
    let mut writer = match opts.format {
        ExportFormat::Parquet => TableWriter::Parquet(ParquetWriter::new(file, &cols)?),
        f => TableWriter::Text(RowWriter::new(file, f, names)?),
    };
    let mut last: Option<Vec<String>> = None;
    // Serialized DAGs are large rows: start small, as docs/export.md says.
    let mut page = if spec.table == "serialized_dag" {
        opts.page_rows.min(50)
    } else {
        opts.page_rows
    }
    .max(1);
    loop {
        let mut binds = Vec::new();
        let mut conds = Vec::new();
        if let Some(w) = &spec.window_column {
            let c = quote(d, w);
            binds.push(bound(window.start));
            let p1 = ts_param(d, &db.placeholder(binds.len()));
            binds.push(bound(window.end));
            let p2 = ts_param(d, &db.placeholder(binds.len()));
            conds.push(format!("{c} >= {p1} AND {c} < {p2}"));
        }
        if let Some(values) = &last {
            let mut ps = Vec::new();
            for (v, &i) in values.iter().zip(&key_idx) {
                binds.push(v.clone());
                let p = db.placeholder(binds.len());
                ps.push(match d {
                    Dialect::Postgres => format!("CAST({p} AS {})", cols[i].1),
                    Dialect::MySql | Dialect::Sqlite => p,
                });
            }
            let ks: Vec<String> = spec.key.iter().map(|k| quote(d, k)).collect();
            conds.push(if ks.len() == 1 {
                format!("{} > {}", ks[0], ps[0])
            } else {
                format!("({}) > ({})", ks.join(", "), ps.join(", "))
            });
        }
        let where_ = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let order: Vec<String> = spec.key.iter().map(|k| quote(d, k)).collect();
        let sql = format!(
            "SELECT {} FROM {}{where_} ORDER BY {} LIMIT {page}",
            select.join(", "),
            quote(d, &spec.table),
            order.join(", ")
        );
        let mut rows = db.query_bind(&sql, &binds, opts.timeout).await?;
        texts_as_text(&mut rows.rows, &text_cols);
        mask(&mut rows.rows, &masks);
        let n = rows.rows.len();
        let mut bytes = 0usize;
        for r in &rows.rows {
            bytes += r.iter().map(cell_size).sum::<usize>();
        }
        writer.write_page(&rows.rows)?;
        progress(writer.rows());
        if n < page {
            break;
        }
        let tail = &rows.rows[n - 1];
        last = Some(key_idx.iter().map(|&i| tail[i].as_label()).collect());
        // Wide rows: keep a page near PAGE_BYTES.
        if bytes > PAGE_BYTES {
            page = (page / 2).max(1);
        }
    }
    let rows = writer.rows();
    let file = writer.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    let path = sink.publish_table(&spec.table).await?;
    Ok((rows, bytes, path))
}

fn cell_size(c: &Cell) -> usize {
    match c {
        Cell::Text(t) => t.len(),
        Cell::Bytes(b) => b.len(),
        _ => 8,
    }
}
