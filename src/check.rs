//! `windsock check`: one pass over every target, printed for people.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::airflow::{Capability, DetectError};
use crate::config::ValidatedConfig;
use crate::daemon::{self, DaemonError};
use crate::metrics::Store;
use crate::runner::RunResult;

/// How the check ended; maps to the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every applicable diagnostic ran.
    Ok,
    /// Some diagnostic failed.
    DiagnosticsFailed,
    /// A database could not be reached or is not an Airflow DB.
    Unreachable,
}

impl Outcome {
    /// Process exit status (sysexits: 69 = EX_UNAVAILABLE).
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::DiagnosticsFailed => 1,
            Outcome::Unreachable => 69,
        }
    }
}

/// Runs every diagnostic of every target once and builds the report.
/// Unreachable targets appear with `up = false` and no findings.
pub async fn report(
    config: &ValidatedConfig,
) -> Result<(crate::report::Report, Outcome), DaemonError> {
    let store = Arc::new(Store::new(
        config.targets.iter().map(|t| t.environment.as_str()),
    ));
    let runners = daemon::runners(config, &store)?;
    let mut outcome = Outcome::Ok;
    for r in &runners {
        match r.detect().await {
            Ok(schema) => {
                for p in r.plan.iter() {
                    if let RunResult::Failed(_) = r.run_one(p, &schema).await
                        && outcome == Outcome::Ok
                    {
                        outcome = Outcome::DiagnosticsFailed;
                    }
                }
            }
            Err(_) => outcome = Outcome::Unreachable,
        }
        r.db.close().await;
    }
    let envs: Vec<String> = config
        .targets
        .iter()
        .map(|t| t.environment.clone())
        .collect();
    Ok((
        crate::report::build(&store, &envs, &config.settings.thresholds),
        outcome,
    ))
}

/// Runs the check, writing the report to `out`, with at most `samples`
/// series per family (0: all).
pub async fn run(
    config: &ValidatedConfig,
    samples: usize,
    out: &mut String,
) -> Result<Outcome, DaemonError> {
    let store = Arc::new(Store::new(
        config.targets.iter().map(|t| t.environment.as_str()),
    ));
    let runners = daemon::runners(config, &store)?;
    let mut outcome = Outcome::Ok;
    for r in runners {
        let _ = writeln!(out, "target {} ({})", r.environment, r.db.redacted_url());
        let schema = match r.detect().await {
            Ok(s) => s,
            Err(e) => {
                let what = match &e {
                    DetectError::NotAirflow => "not an Airflow metadata DB",
                    DetectError::Db(_) => "unreachable",
                };
                let _ = writeln!(out, "  database: {what}: {e}");
                outcome = Outcome::Unreachable;
                r.db.close().await;
                continue;
            }
        };
        let _ = writeln!(
            out,
            "  database: {} {}\n  airflow:  {} (alembic {}{})",
            schema.dialect,
            schema.server_version,
            schema.version_label(),
            schema.revision.as_deref().unwrap_or("none"),
            schema
                .fab_revision
                .as_deref()
                .map(|f| format!(", fab {f}"))
                .unwrap_or_default(),
        );
        let caps: Vec<&str> = Capability::ALL
            .iter()
            .filter(|c| schema.has(**c))
            .map(|c| c.describe())
            .collect();
        let _ = writeln!(out, "  schema:   {}", caps.join("; "));
        let _ = writeln!(out, "  diagnostics:");
        for p in r.plan.iter() {
            let name = &p.diagnostic.meta().name;
            match r.run_one(p, &schema).await {
                RunResult::Ok(o) => {
                    let secs = store
                        .target(&r.environment)
                        .and_then(|t| t.diagnostics.get(name.as_ref()).map(|d| d.duration_seconds))
                        .unwrap_or(0.0);
                    let series: usize = o.families.iter().map(|f| f.samples.len()).sum();
                    let _ = writeln!(
                        out,
                        "    ok      {name:<28} {:>7.1} ms  {} rows, {series} series",
                        secs * 1000.0,
                        o.rows
                    );
                    print_families(out, &o.families, samples);
                }
                RunResult::Skipped(why) => {
                    let _ = writeln!(out, "    skipped {name:<28} {why}");
                }
                RunResult::Failed(e) => {
                    let _ = writeln!(out, "    FAILED  {name:<28} {e}");
                    if outcome == Outcome::Ok {
                        outcome = Outcome::DiagnosticsFailed;
                    }
                }
            }
        }
        r.db.close().await;
    }
    Ok(outcome)
}

/// The series of each family under the name they are exposed as
/// (`_total`, `_info`), at most `limit` each (0: all), saying how many more
/// there are.
fn print_families(out: &mut String, families: &[crate::diagnostics::Family], limit: usize) {
    let limit = if limit == 0 { usize::MAX } else { limit };
    for f in families {
        let name = crate::docs::exposed_name(&f.spec.name, f.spec.kind);
        for (labels, v) in f.samples.iter().take(limit) {
            let pairs: Vec<String> = f
                .label_names
                .iter()
                .zip(labels)
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            let shown = if f.spec.seconds_since {
                crate::metrics::now_unix() - v
            } else {
                *v
            };
            let _ = writeln!(out, "              {name}{{{}}} {shown}", pairs.join(","));
        }
        if f.samples.len() > limit {
            let _ = writeln!(
                out,
                "              {name}: {} more series (--samples 0 prints all)",
                f.samples.len() - limit
            );
        }
    }
}
