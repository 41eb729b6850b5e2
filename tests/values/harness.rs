//! Loads a data fixture (a database real Airflow wrote) into a fresh
//! database, runs diagnostics through the runner as the daemon does, and
//! reads the truth with plain SQL.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{self, TestDb, fast_settings};
use windsock::airflow::Schema;
use windsock::config::{DiagnosticsSettings, Settings};
use windsock::db::{Cell, Db, Dialect, Rows};
use windsock::diagnostics;
use windsock::metrics::Store;
use windsock::runner::{RunResult, TargetRunner};

/// `metric{label=value,...}` → value.
pub type Samples = BTreeMap<String, f64>;

/// One loaded fixture.
pub struct Fx {
    pub version: String,
    pub dialect: Dialect,
    pub db: TestDb,
    pub facts: serde_json::Value,
    pub runner: TargetRunner,
    pub schema: Arc<Schema>,
    truth: Db,
}

/// Settings for value tests: a window long enough to keep the fixture's
/// runs (made on the day it was generated) in view.
pub fn settings() -> Settings {
    Settings {
        diagnostics: DiagnosticsSettings {
            window: Duration::from_secs(10 * 365 * 86_400),
            ..DiagnosticsSettings::default()
        },
        ..Settings::default()
    }
}

impl Fx {
    /// Loads `version`'s dump for `dialect` with these settings.
    pub async fn load(version: &str, dialect: Dialect, settings: &Settings) -> Fx {
        let db = TestDb::with_data(dialect, version).await;
        Fx::on(db, version, settings, common::facts(version, dialect)).await
    }

    /// A runner over an already loaded database.
    pub async fn on(db: TestDb, version: &str, s: &Settings, facts: serde_json::Value) -> Fx {
        let runner = TargetRunner {
            environment: "t".into(),
            db: db.windsock(&fast_settings()),
            plan: Arc::new(diagnostics::registry(s).unwrap()),
            store: Arc::new(Store::new(["t"])),
            settings: s.collection.clone(),
            limits: Arc::new(windsock::metrics::limits::Limits::new(&s.cardinality)),
        };
        let schema = runner.detect().await.unwrap();
        Fx {
            version: version.to_owned(),
            dialect: db.dialect,
            truth: db.windsock(&fast_settings()),
            facts,
            db,
            runner,
            schema,
        }
    }

    /// `version/dialect`, for assertion messages.
    pub fn at(&self) -> String {
        format!("{}/{}", self.version, self.dialect)
    }

    /// Airflow 3 or later.
    pub fn v3(&self) -> bool {
        self.schema.major >= 3
    }

    /// Runs the diagnostic `name` once; panics unless it succeeds.
    pub async fn run(&self, name: &str) -> Samples {
        self.run_on(&self.runner, name).await
    }

    /// Runs `name` once with other settings (a runner of its own, so no
    /// state is shared with [`Fx::run`]).
    pub async fn run_with(&self, s: &Settings, name: &str) -> Samples {
        let runner = TargetRunner {
            plan: Arc::new(diagnostics::registry(s).unwrap()),
            settings: s.collection.clone(),
            limits: Arc::new(windsock::metrics::limits::Limits::new(&s.cardinality)),
            ..self.runner.clone()
        };
        self.run_on(&runner, name).await
    }

    async fn run_on(&self, runner: &TargetRunner, name: &str) -> Samples {
        let p = runner
            .plan
            .iter()
            .find(|p| p.diagnostic.meta().name == name)
            .unwrap_or_else(|| panic!("no diagnostic {name}"));
        match runner.run_one(p, &self.schema).await {
            RunResult::Ok(o) => common::sample_map(&o.families).into_iter().collect(),
            RunResult::Skipped(why) => panic!("{}: {name} skipped: {why}", self.at()),
            RunResult::Failed(e) => panic!("{}: {name} failed: {e}", self.at()),
        }
    }

    /// Rows of a truth query.
    pub async fn rows(&self, sql: &str) -> Rows {
        self.truth
            .query(sql, Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("{}: {sql}: {e}", self.at()))
    }

    /// A timestamp column as UNIX seconds, in truth SQL.
    pub fn epoch(&self, column: &str) -> String {
        common::epoch_sql(self.dialect, column)
    }

    /// "now minus `secs` seconds" as a literal expression of this dialect,
    /// for writes that age or refresh rows.
    pub fn ago(&self, secs: u64) -> String {
        match self.dialect {
            Dialect::Postgres => format!("(now() - interval '{secs} seconds')"),
            Dialect::MySql => format!("(UTC_TIMESTAMP(6) - INTERVAL {secs} SECOND)"),
            Dialect::Sqlite => format!("strftime('%Y-%m-%d %H:%M:%f', 'now', '-{secs} seconds')"),
        }
    }

    /// "now plus `secs` seconds", like [`Fx::ago`]: for rows that must stay
    /// in the future however old the fixture is.
    pub fn ahead(&self, secs: u64) -> String {
        match self.dialect {
            Dialect::Postgres => format!("(now() + interval '{secs} seconds')"),
            Dialect::MySql => format!("(UTC_TIMESTAMP(6) + INTERVAL {secs} SECOND)"),
            Dialect::Sqlite => format!("strftime('%Y-%m-%d %H:%M:%f', 'now', '+{secs} seconds')"),
        }
    }

    /// The boolean literal `b` of this dialect.
    pub fn bool(&self, b: bool) -> &'static str {
        match (self.dialect, b) {
            (Dialect::Postgres, true) => "true",
            (Dialect::Postgres, false) => "false",
            (_, true) => "1",
            (_, false) => "0",
        }
    }

    /// Closes the handles.
    pub async fn close(self) {
        self.runner.db.close().await;
        self.truth.close().await;
    }
}

/// Runs `check` on every data fixture: each Airflow version, each dialect.
pub async fn each(settings: &Settings, check: impl AsyncFn(&Fx)) {
    for (version, dialect) in common::data_fixtures() {
        let fx = Fx::load(&version, dialect, settings).await;
        check(&fx).await;
        fx.close().await;
    }
}

/// A cell as text (NULL: empty).
pub fn text(c: &Cell) -> String {
    c.as_label()
}

/// A cell as a number (NULL: none).
pub fn num(c: &Cell) -> Option<f64> {
    c.as_f64()
}

/// Nearest-rank percentile of unsorted values (the definition windsock's
/// docs give).
pub fn pct(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Asserts that `got` has `key` with a value within `tol` of `want`.
#[track_caller]
pub fn assert_near(got: &Samples, key: &str, want: f64, tol: f64, at: &str) {
    let v = got
        .get(key)
        .unwrap_or_else(|| panic!("{at}: no {key}; have {:#?}", got.keys().collect::<Vec<_>>()));
    assert!(
        (v - want).abs() <= tol,
        "{at}: {key} = {v}, want {want} (±{tol})"
    );
}

/// The samples of one metric.
pub fn family<'a>(got: &'a Samples, metric: &str) -> BTreeMap<&'a str, f64> {
    let prefix = format!("{metric}{{");
    got.iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(k, v)| (&k[prefix.len()..k.len() - 1], *v))
        .collect()
}
