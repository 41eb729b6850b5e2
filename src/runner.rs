//! Runs the registry against each target on its schedule.
//!
//! Per target: detect the schema (retrying with backoff while the DB is
//! down), then run every applicable diagnostic in its own task on its own
//! interval, with start-up jitter, a per-target limit on concurrent queries,
//! a deadline per run, and exponential backoff after failures. The schema is
//! re-detected every `detect_interval`; when it changed (an Airflow
//! upgrade), the diagnostics are re-planned.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::airflow::{self, DetectError, Schema};
use crate::config::CollectionSettings;
use crate::db::Db;
use crate::diagnostics::{DiagError, Output, Planned};
use crate::metrics::Store;
use crate::metrics::limits::Limits;

/// Everything a target's collection needs.
#[derive(Debug, Clone)]
pub struct TargetRunner {
    /// The `environment` label.
    pub environment: String,
    /// The database.
    pub db: Db,
    /// The diagnostics to run, with their schedules (this target's own
    /// instances).
    pub plan: Arc<Vec<Planned>>,
    /// Where results go.
    pub store: Arc<Store>,
    /// Scheduling settings.
    pub settings: CollectionSettings,
    /// Cardinality limits applied before publishing.
    pub limits: Arc<Limits>,
}

/// Result of running one diagnostic once.
#[derive(Debug)]
pub enum RunResult {
    /// It ran.
    Ok(Output),
    /// It failed.
    Failed(DiagError),
    /// It does not apply to this schema.
    Skipped(String),
}

impl TargetRunner {
    /// Detects the schema and records the outcome in the store.
    pub async fn detect(&self) -> Result<Arc<Schema>, DetectError> {
        let res = airflow::detect(&self.db, self.settings.default_timeout).await;
        match &res {
            Ok(schema) => {
                self.store.set_up(&self.environment, true);
                self.store
                    .set_schema(&self.environment, Arc::new(schema.clone()));
            }
            Err(DetectError::Db(e)) if e.kind() == "connect" => {
                self.store.set_up(&self.environment, false);
            }
            Err(_) => {}
        }
        res.map(Arc::new)
    }

    /// Runs one diagnostic once and publishes the outcome.
    pub async fn run_one(&self, planned: &Planned, schema: &Schema) -> RunResult {
        let d = planned.diagnostic.as_ref();
        if let Err(skip) = d.applies(schema) {
            return RunResult::Skipped(skip.to_string());
        }
        let name = &d.meta().name;
        let timeout = planned.timeout;
        let started = Instant::now();
        // The DB layer enforces the deadline itself; this outer bound also
        // covers diagnostics that do work in Rust.
        let res = match tokio::time::timeout(
            timeout + Duration::from_secs(5),
            d.run(&self.db, schema, timeout),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(DiagError::Db(crate::db::DbError::Timeout {
                after: timeout,
                message: "diagnostic did not finish in time".to_owned(),
            })),
        };
        let secs = started.elapsed().as_secs_f64();
        match res {
            Ok(mut out) => {
                debug!(environment = %self.environment, diagnostic = %name, rows = out.rows, seconds = secs, "Diagnostic ran.");
                // [cardinality]: DAG filters, dropped labels, top-N per
                // family, applied before anything is published.
                out.families = self.limits.apply(out.families);
                self.store.set_up(&self.environment, true);
                self.store.publish(
                    &self.environment,
                    name,
                    out.families.clone(),
                    out.rows,
                    secs,
                );
                RunResult::Ok(out)
            }
            Err(error) => {
                warn!(environment = %self.environment, diagnostic = %name, kind = error.kind(), %error, "Diagnostic failed; its last good values stay published.");
                if error.kind() == "connect" {
                    self.store.set_up(&self.environment, false);
                }
                self.store.fail(&self.environment, name, error.kind(), secs);
                RunResult::Failed(error)
            }
        }
    }

    /// Runs forever (until `cancel`): detect, collect, re-detect.
    pub async fn run(self, cancel: CancellationToken) {
        let mut retry = Duration::from_secs(1);
        let mut current: Option<(Arc<Schema>, CancellationToken)> = None;
        loop {
            match self.detect().await {
                Ok(schema) => {
                    retry = Duration::from_secs(1);
                    let changed = current.as_ref().is_none_or(|(s, _)| **s != *schema);
                    if changed {
                        if let Some((_, old)) = current.take() {
                            info!(environment = %self.environment, "Schema changed; re-planning diagnostics.");
                            old.cancel();
                        }
                        info!(
                            environment = %self.environment,
                            url = %self.db.redacted_url(),
                            airflow_version = %schema.version_label(),
                            revision = schema.revision.as_deref().unwrap_or("none"),
                            dialect = %schema.dialect,
                            "Detected Airflow metadata DB."
                        );
                        let child = cancel.child_token();
                        self.spawn_collection(schema.clone(), child.clone());
                        current = Some((schema, child));
                    }
                }
                Err(error) => {
                    warn!(environment = %self.environment, url = %self.db.redacted_url(), %error, retry_in = ?retry, "Cannot detect the Airflow schema; serving last known values.");
                    self.store.set_first_round_done(&self.environment);
                }
            }
            let wait = if current.is_some() {
                self.settings.detect_interval
            } else {
                let w = retry;
                retry = (retry * 2).min(Duration::from_secs(60));
                w
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        // Shutdown: queries still running on the server end now, not at
        // their statement timeout after windsock has gone.
        let cancelled = self.db.cancel_in_flight(Duration::from_secs(2)).await;
        if cancelled > 0 {
            info!(environment = %self.environment, cancelled, "Cancelled queries still running on the database.");
        }
        self.db.close().await;
    }

    fn spawn_collection(&self, schema: Arc<Schema>, cancel: CancellationToken) {
        let sem = Arc::new(Semaphore::new(self.settings.max_concurrent_queries));
        let recovery = Arc::new(Recovery::new(&self.environment));
        let probe_every = self
            .plan
            .iter()
            .map(|p| p.interval)
            .min()
            .unwrap_or(Duration::from_secs(15));
        self.spawn_probe(recovery.clone(), probe_every, cancel.clone());
        let applicable: Vec<Planned> = self
            .plan
            .iter()
            .filter(|p| {
                // A new schema invalidates any state kept from the old one.
                p.diagnostic.reset();
                match p.diagnostic.applies(&schema) {
                    Ok(()) => true,
                    Err(reason) => {
                        info!(environment = %self.environment, diagnostic = %p.diagnostic.meta().name, %reason, "Diagnostic does not apply to this schema; skipped.");
                        false
                    }
                }
            })
            .cloned()
            .collect();
        let remaining = Arc::new(AtomicUsize::new(applicable.len()));
        if applicable.is_empty() {
            self.store.set_first_round_done(&self.environment);
        }
        for d in applicable {
            let me = self.clone();
            let schema = schema.clone();
            let sem = sem.clone();
            let cancel = cancel.clone();
            let remaining = remaining.clone();
            let recovery = recovery.clone();
            tokio::spawn(async move {
                let jitter = me.settings.startup_jitter;
                let first_delay = if jitter.is_zero() {
                    Duration::ZERO
                } else {
                    rand::rng().random_range(Duration::ZERO..jitter)
                };
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(first_delay) => {}
                }
                let interval = d.interval;
                let mut failures: u32 = 0;
                let mut first = true;
                loop {
                    let ok = {
                        let Ok(_permit) = sem.acquire().await else {
                            return;
                        };
                        if cancel.is_cancelled() {
                            return;
                        }
                        recovery.observe(&me.run_one(&d, &schema).await)
                    };
                    if first {
                        first = false;
                        if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                            me.store.set_first_round_done(&me.environment);
                        }
                    }
                    failures = if ok { 0 } else { failures.saturating_add(1) };
                    let wait = backoff(interval, failures, me.settings.max_backoff);
                    // In backoff, the database coming back ends the wait.
                    let back = recovery.notify.notified();
                    tokio::pin!(back);
                    back.as_mut().enable();
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                        () = back, if failures > 0 => failures = 0,
                    }
                }
            });
        }
    }
}

/// Whether a target's database is unreachable, and the wake-up of its
/// diagnostics in backoff when it is reachable again.
#[derive(Debug)]
struct Recovery {
    environment: String,
    down: AtomicBool,
    notify: Notify,
}

impl Recovery {
    fn new(environment: &str) -> Self {
        Recovery {
            environment: environment.to_owned(),
            down: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }

    /// Notes a run's outcome; whether it succeeded.
    fn observe(&self, result: &RunResult) -> bool {
        match result {
            RunResult::Ok(_) => {
                self.back();
                true
            }
            RunResult::Failed(e) => {
                if e.kind() == "connect" {
                    self.down.store(true, Ordering::Release);
                }
                false
            }
            RunResult::Skipped(_) => false,
        }
    }

    /// The database answered (a probe or any diagnostic): wake whatever
    /// waits in backoff.
    fn back(&self) {
        if self.down.swap(false, Ordering::AcqRel) {
            info!(environment = %self.environment, "The database answers again; diagnostics in backoff run now.");
            self.notify.notify_waiters();
        }
    }
}

impl TargetRunner {
    /// While the database is unreachable, asks it `SELECT 1` every `every`
    /// (the shortest diagnostic interval), so diagnostics in backoff run
    /// again within that long of it coming back, not after their backoff.
    fn spawn_probe(&self, recovery: Arc<Recovery>, every: Duration, cancel: CancellationToken) {
        let (db, timeout) = (self.db.clone(), self.settings.default_timeout);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                if recovery.down.load(Ordering::Acquire)
                    && db.query("SELECT 1", timeout).await.is_ok()
                {
                    recovery.back();
                }
            }
        });
    }
}

/// The wait before the next run: the interval, doubled for each consecutive
/// failure, never more than `max` (and never less than the interval).
pub fn backoff(interval: Duration, failures: u32, max: Duration) -> Duration {
    if failures == 0 {
        return interval;
    }
    let factor = 1u32 << failures.min(16);
    interval.saturating_mul(factor).min(max.max(interval))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let i = Duration::from_secs(15);
        let max = Duration::from_secs(600);
        assert_eq!(backoff(i, 0, max), i);
        assert_eq!(backoff(i, 1, max), Duration::from_secs(30));
        assert_eq!(backoff(i, 3, max), Duration::from_secs(120));
        assert_eq!(backoff(i, 30, max), max);
        // An interval longer than the cap is never shortened by it.
        assert_eq!(
            backoff(Duration::from_secs(3600), 2, max),
            Duration::from_secs(3600)
        );
    }
}
