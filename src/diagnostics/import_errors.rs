//! DAG files that fail to import.
//!
//! Source: `import_error` (one row per broken file; small).

use std::time::Duration;

use super::{Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic};
use crate::airflow::Schema;

/// `airflow_dag_import_errors`.
pub(super) fn count() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "import_errors".into(),
            help: "DAG files that fail to import".into(),
            source: "import_error".into(),
            cost: "count of a small table".into(),
            category: Category::Dags,
            interval: Duration::from_secs(60),
            timeout: None,
            requires: Vec::new(),
        },
        build,
        vec![MetricSpec::gauge(
            "airflow_dag_import_errors",
            "DAG files whose latest parse failed (rows of import_error)",
            "errors",
        )],
    )
}

fn build(_schema: &Schema, _ctx: &Context) -> Result<String, Skip> {
    Ok("SELECT COUNT(*) AS errors FROM import_error".to_owned())
}
