//! User-defined queries (`[[queries]]` in the config): the same kind of
//! thing as a built-in SQL diagnostic, declared in configuration.

use std::borrow::Cow;
use std::collections::HashSet;

use super::{Category, Meta, MetricKind, MetricSpec, SqlDiagnostic};
use crate::config::{PerDialectSql, QuerySettings, QuerySql};
use crate::db::Dialect;

/// Whether `name` is a valid Prometheus metric or label name.
pub fn valid_name(name: &str, colon_allowed: bool) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon_allowed && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon_allowed && c == ':'))
}

/// Validates a `[[queries]]` entry and turns it into a diagnostic.
pub fn build(q: &QuerySettings) -> Result<SqlDiagnostic, String> {
    if !valid_name(&q.name, false) {
        return Err("name must be letters, digits and '_' (not starting with a digit)".into());
    }
    let sql = match &q.sql {
        QuerySql::Any(text) => PerDialectSql {
            postgres: Some(text.clone()),
            mysql: Some(text.clone()),
            sqlite: Some(text.clone()),
        },
        QuerySql::PerDialect(per) => per.clone(),
    };
    for text in [&sql.postgres, &sql.mysql, &sql.sqlite]
        .into_iter()
        .flatten()
    {
        if text.trim().is_empty() {
            return Err("sql is empty".into());
        }
    }
    if sql.postgres.is_none() && sql.mysql.is_none() && sql.sqlite.is_none() {
        return Err("sql needs at least one of postgres, mysql, sqlite".into());
    }
    for (dialect, text) in [
        (Dialect::Postgres, &sql.postgres),
        (Dialect::MySql, &sql.mysql),
        (Dialect::Sqlite, &sql.sqlite),
    ] {
        if let Some(text) = text {
            super::sql_guard::check(text, dialect)
                .map_err(|e| format!("sql ({}): {e}", dialect.as_str()))?;
        }
    }
    if q.interval < super::MIN_INTERVAL {
        return Err(format!(
            "interval must be at least {:?} (each run is a query on the Airflow database)",
            super::MIN_INTERVAL
        ));
    }
    if q.metrics.is_empty() {
        return Err("needs at least one [[queries.metrics]]".into());
    }
    let mut specs = Vec::new();
    for (j, m) in q.metrics.iter().enumerate() {
        let at = |msg: String| format!("metrics[{j}] (`{}`): {msg}", m.name);
        if !valid_name(&m.name, true) {
            return Err(at("not a valid metric name".into()));
        }
        let kind = match m.kind.as_str() {
            "gauge" => MetricKind::Gauge,
            "counter" => MetricKind::Counter,
            other => return Err(at(format!("type `{other}` is not gauge or counter"))),
        };
        if kind == MetricKind::Counter && m.name.ends_with("_total") {
            return Err(at(
                "name a counter without `_total`; windsock adds it".into()
            ));
        }
        if m.values.is_empty() {
            return Err(at("values is empty".into()));
        }
        if m.values.len() > 1 && m.value_label.is_none() {
            return Err(at(
                "several values need a value_label to tell them apart".into()
            ));
        }
        let mut labels = HashSet::new();
        labels.insert("environment".to_owned());
        let all = m
            .key_labels
            .iter()
            .chain(m.value_label.iter())
            .chain(m.static_labels.keys());
        for l in all {
            if !valid_name(l, false) || l.starts_with("__") {
                return Err(at(format!("`{l}` is not a valid label name")));
            }
            if !labels.insert(l.clone()) {
                return Err(at(format!(
                    "label `{l}` is used twice (environment is reserved)"
                )));
            }
        }
        specs.push(MetricSpec {
            keep: None,
            name: Cow::Owned(m.name.clone()),
            help: Cow::Owned(if m.help.is_empty() {
                format!("User-defined query {}", q.name)
            } else {
                m.help.clone()
            }),
            kind,
            key_labels: m.key_labels.iter().cloned().map(Cow::Owned).collect(),
            values: m.values.iter().cloned().map(Cow::Owned).collect(),
            value_label: m.value_label.clone().map(Cow::Owned),
            static_labels: m
                .static_labels
                .iter()
                .map(|(k, v)| (Cow::Owned(k.clone()), Cow::Owned(v.clone())))
                .collect(),
            seconds_since: false,
            aggregate: super::Aggregate::Sum,
        });
    }
    Ok(SqlDiagnostic::fixed(
        Meta {
            name: Cow::Owned(q.name.clone()),
            help: Cow::Owned(if q.help.is_empty() {
                "User-defined query".to_owned()
            } else {
                q.help.clone()
            }),
            category: Category::Custom,
            interval: q.interval,
            timeout: q.timeout,
            requires: Vec::new(),
            source: "user-defined SQL".into(),
            cost: "as written".into(),
        },
        sql,
        specs,
    ))
}
