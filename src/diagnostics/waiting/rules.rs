//! Why a waiting task instance or DAG run waits: the first limit that holds
//! it, checked in the order Airflow's scheduler checks them. Pure logic over
//! what [`super`] read; each rule names the Airflow code it follows.

use std::collections::HashMap;

/// What holds a waiting task instance or DAG run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Reason {
    /// No scheduler is alive (`[scheduler] scheduler_health_check_threshold`).
    NoScheduler,
    /// A 2.x backfill run: the `airflow dags backfill` process queues its
    /// tasks, not the scheduler.
    BackfillJob,
    /// The DAG is paused: the scheduler's queries skip it.
    DagPaused,
    /// The task's DAG run is not running (queued or finished).
    DagRunNotRunning,
    /// The task's pool does not exist ("Tasks using non-existent pool").
    PoolMissing,
    /// The task needs more slots than the pool has in all.
    PoolTooSmall,
    /// The pool has fewer open slots than the task needs.
    PoolFull,
    /// The DAG (2.x) or the DAG run (3.x) has `max_active_tasks` running or queued.
    MaxActiveTasks,
    /// The task has `max_active_tis_per_dag` instances running or queued.
    MaxActiveTisPerDag,
    /// The task has `max_active_tis_per_dagrun` running or queued in this run.
    MaxActiveTisPerDagrun,
    /// The DAG has `max_active_runs` runs running.
    MaxActiveRuns,
    /// Nothing in the DB holds it: the executor's free slots
    /// (`[core] parallelism`, in the scheduler's memory) or the scheduler's
    /// throughput (`max_tis_per_query`, `max_dagruns_per_loop_to_schedule`).
    SchedulerCapacity,
    /// Queued, but no worker of the executor has started it.
    Executor,
    /// Deferred, and no live triggerer runs its trigger.
    Triggerer,
    /// Deferred on a live triggerer: waiting for its trigger's event.
    Trigger,
}

impl Reason {
    /// The `reason` label value.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Reason::NoScheduler => "no_scheduler",
            Reason::BackfillJob => "backfill_job",
            Reason::DagPaused => "dag_paused",
            Reason::DagRunNotRunning => "dag_run_not_running",
            Reason::PoolMissing => "pool_missing",
            Reason::PoolTooSmall => "pool_too_small",
            Reason::PoolFull => "pool_full",
            Reason::MaxActiveTasks => "max_active_tasks",
            Reason::MaxActiveTisPerDag => "max_active_tis_per_dag",
            Reason::MaxActiveTisPerDagrun => "max_active_tis_per_dagrun",
            Reason::MaxActiveRuns => "max_active_runs",
            Reason::SchedulerCapacity => "scheduler_capacity",
            Reason::Executor => "executor",
            Reason::Triggerer => "triggerer",
            Reason::Trigger => "trigger",
        }
    }
}

/// The state a waiting task instance is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Waiting {
    Scheduled,
    Queued,
    Deferred,
}

/// Waiting task instances of one (dag, run, task, state, pool).
#[derive(Debug, Clone)]
pub(super) struct WaitingTis {
    pub(super) dag_id: String,
    pub(super) run_id: String,
    pub(super) task_id: String,
    pub(super) state: Waiting,
    pub(super) pool: String,
    pub(super) pool_slots: f64,
    pub(super) count: u64,
    /// UNIX time since which the oldest of them waits.
    pub(super) since: f64,
    pub(super) run_running: bool,
    /// Its DAG run is a backfill run (`run_type = 'backfill'`).
    pub(super) backfill: bool,
    pub(super) dag_paused: bool,
    pub(super) max_active_tasks: Option<u64>,
    /// `dag.has_task_concurrency_limits` (true where the column is missing).
    pub(super) task_limits: bool,
    /// Deferred: its trigger runs on a live triggerer.
    pub(super) trigger_live: bool,
}

/// Queued DAG runs of one DAG.
#[derive(Debug, Clone)]
pub(super) struct QueuedRuns {
    pub(super) dag_id: String,
    pub(super) count: u64,
    pub(super) since: f64,
    pub(super) dag_paused: bool,
    pub(super) max_active_runs: Option<u64>,
    pub(super) running: u64,
}

/// A task's own limits, from its serialized DAG.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct TaskLimits {
    pub(super) per_dag: Option<u64>,
    pub(super) per_dagrun: Option<u64>,
}

/// What is running or queued now, and the pools' open slots.
#[derive(Debug, Default)]
pub(super) struct Occupancy {
    /// Pool → (total slots, open slots); total is infinite for `-1`.
    pub(super) pools: HashMap<String, (f64, f64)>,
    /// Running + queued task instances per DAG, per (DAG, run), per (DAG,
    /// task) and per (DAG, run, task): Airflow's `EXECUTION_STATES`.
    pub(super) per_dag: HashMap<String, u64>,
    pub(super) per_run: HashMap<(String, String), u64>,
    pub(super) per_task: HashMap<(String, String), u64>,
    pub(super) per_run_task: HashMap<(String, String, String), u64>,
}

/// What the rules need besides the task instances.
pub(super) struct Scene<'a> {
    pub(super) scheduler_alive: bool,
    /// Airflow 3 counts `max_active_tasks` per DAG run, 2.x per DAG.
    pub(super) max_active_tasks_per_run: bool,
    /// Airflow 2 leaves backfill runs to the backfill job; 3 schedules them.
    pub(super) backfill_by_job: bool,
    pub(super) occupancy: &'a Occupancy,
    /// Task limits by (dag_id, task_id), for DAGs with task limits.
    pub(super) limits: &'a HashMap<(String, String), TaskLimits>,
}

/// Why these task instances wait.
pub(super) fn task_reason(ti: &WaitingTis, scene: &Scene<'_>) -> Reason {
    match ti.state {
        // Queued work is the executor's; the scheduler's LocalExecutor dies with it.
        Waiting::Queued if !scene.scheduler_alive => Reason::NoScheduler,
        Waiting::Queued => Reason::Executor,
        // Deferred work is the triggerer's until its trigger fires.
        Waiting::Deferred if ti.trigger_live => Reason::Trigger,
        Waiting::Deferred => Reason::Triggerer,
        Waiting::Scheduled => scheduled_reason(ti, scene),
    }
}

/// `SchedulerJobRunner._executable_task_instances_to_queued` (2.10.5 and
/// 3.1.8): the base query's filters, then pools, DAG concurrency and task
/// concurrency, in that order.
fn scheduled_reason(ti: &WaitingTis, scene: &Scene<'_>) -> Reason {
    let occ = scene.occupancy;
    // Base query (2.x): DagRun.run_type != BACKFILL_JOB.
    if scene.backfill_by_job && ti.backfill {
        return Reason::BackfillJob;
    }
    if !scene.scheduler_alive {
        return Reason::NoScheduler;
    }
    // Base query: DagModel.is_paused false, DagRun.state running.
    if ti.dag_paused {
        return Reason::DagPaused;
    }
    if !ti.run_running {
        return Reason::DagRunNotRunning;
    }
    // Pools (`Pool.slots_stats`), in Airflow's order: missing, no open slot
    // (the pool is starved before its tasks are looked at), needing more
    // slots than the pool has, more than are open.
    let Some(&(total, open)) = occ.pools.get(&ti.pool) else {
        return Reason::PoolMissing;
    };
    if open <= 0.0 {
        return Reason::PoolFull;
    }
    if ti.pool_slots > total {
        return Reason::PoolTooSmall;
    }
    if ti.pool_slots > open {
        return Reason::PoolFull;
    }
    // DAG concurrency: per DAG on 2.x, per DAG run on 3.x.
    let active = if scene.max_active_tasks_per_run {
        count(&occ.per_run, &(ti.dag_id.clone(), ti.run_id.clone()))
    } else {
        count(&occ.per_dag, &ti.dag_id)
    };
    if ti.max_active_tasks.is_some_and(|m| active >= m) {
        return Reason::MaxActiveTasks;
    }
    // Task concurrency, only for DAGs that have task limits.
    let key = (ti.dag_id.clone(), ti.task_id.clone());
    if let Some(l) = ti.task_limits.then(|| scene.limits.get(&key)).flatten() {
        if l.per_dag.is_some_and(|m| count(&occ.per_task, &key) >= m) {
            return Reason::MaxActiveTisPerDag;
        }
        let run_key = (ti.dag_id.clone(), ti.run_id.clone(), ti.task_id.clone());
        if l.per_dagrun
            .is_some_and(|m| count(&occ.per_run_task, &run_key) >= m)
        {
            return Reason::MaxActiveTisPerDagrun;
        }
    }
    Reason::SchedulerCapacity
}

fn count<K: std::hash::Hash + Eq>(map: &HashMap<K, u64>, key: &K) -> u64 {
    map.get(key).copied().unwrap_or(0)
}

/// Why a DAG's queued runs wait: `SchedulerJobRunner._start_queued_dagruns`
/// with `DagRun.next_dagruns_to_examine` (2.10.5) /
/// `get_queued_dag_runs_to_set_running` (3.1.8): DAG not paused, fewer
/// running runs than `max_active_runs` (a NULL limit starts none).
pub(super) fn run_reason(runs: &QueuedRuns, scheduler_alive: bool) -> Reason {
    if !scheduler_alive {
        Reason::NoScheduler
    } else if runs.dag_paused {
        Reason::DagPaused
    } else if runs.max_active_runs.is_none_or(|m| runs.running >= m) {
        Reason::MaxActiveRuns
    } else {
        Reason::SchedulerCapacity
    }
}

/// The task limits in a serialized DAG's JSON: `max_active_tis_per_dag` and
/// `max_active_tis_per_dagrun` of each task (under `partial_kwargs` for a
/// mapped task), present only when set.
pub(super) fn task_limits(json: &serde_json::Value) -> HashMap<String, TaskLimits> {
    let mut out = HashMap::new();
    let Some(tasks) = json.pointer("/dag/tasks").and_then(|t| t.as_array()) else {
        return out;
    };
    for t in tasks {
        let t = t.get("__var").unwrap_or(t);
        let Some(id) = t.get("task_id").and_then(|v| v.as_str()) else {
            continue;
        };
        let get = |key: &str| {
            t.get(key)
                .or_else(|| t.pointer(&format!("/partial_kwargs/{key}")))
                .and_then(|v| v.as_u64())
        };
        let l = TaskLimits {
            per_dag: get("max_active_tis_per_dag"),
            per_dagrun: get("max_active_tis_per_dagrun"),
        };
        if l != TaskLimits::default() {
            out.insert(id.to_owned(), l);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ti(state: Waiting) -> WaitingTis {
        WaitingTis {
            dag_id: "d".into(),
            run_id: "r".into(),
            task_id: "t".into(),
            state,
            pool: "p".into(),
            pool_slots: 1.0,
            count: 1,
            since: 0.0,
            run_running: true,
            backfill: false,
            dag_paused: false,
            max_active_tasks: Some(2),
            task_limits: true,
            trigger_live: false,
        }
    }

    fn reason_with(
        t: &WaitingTis,
        occ: &Occupancy,
        per_run: bool,
        limits: &[TaskLimits],
    ) -> Reason {
        let limits: HashMap<_, _> = limits
            .iter()
            .map(|l| (("d".into(), "t".into()), *l))
            .collect();
        let scene = Scene {
            scheduler_alive: true,
            max_active_tasks_per_run: per_run,
            backfill_by_job: !per_run,
            occupancy: occ,
            limits: &limits,
        };
        task_reason(t, &scene)
    }

    fn pool(open: f64) -> Occupancy {
        Occupancy {
            pools: [("p".to_owned(), (4.0, open))].into(),
            ..Occupancy::default()
        }
    }

    #[test]
    fn rules_in_the_schedulers_order() {
        let s = ti(Waiting::Scheduled);
        assert_eq!(
            reason_with(&s, &pool(1.0), false, &[]),
            Reason::SchedulerCapacity
        );
        assert_eq!(reason_with(&s, &pool(0.0), false, &[]), Reason::PoolFull);
        assert_eq!(
            reason_with(&s, &Occupancy::default(), false, &[]),
            Reason::PoolMissing
        );
        let big = WaitingTis {
            pool_slots: 5.0,
            ..s.clone()
        };
        assert_eq!(
            reason_with(&big, &pool(4.0), false, &[]),
            Reason::PoolTooSmall
        );
        // A starved pool is skipped before its tasks' sizes are looked at.
        assert_eq!(reason_with(&big, &pool(0.0), false, &[]), Reason::PoolFull);
        let backfill = WaitingTis {
            backfill: true,
            ..s.clone()
        };
        assert_eq!(
            reason_with(&backfill, &pool(1.0), false, &[]),
            Reason::BackfillJob
        );
        assert_eq!(
            reason_with(&backfill, &pool(1.0), true, &[]),
            Reason::SchedulerCapacity
        );
        let paused = WaitingTis {
            dag_paused: true,
            ..s.clone()
        };
        assert_eq!(
            reason_with(&paused, &pool(0.0), false, &[]),
            Reason::DagPaused
        );
        let idle = WaitingTis {
            run_running: false,
            ..s.clone()
        };
        assert_eq!(
            reason_with(&idle, &pool(1.0), false, &[]),
            Reason::DagRunNotRunning
        );
    }

    #[test]
    fn max_active_tasks_counts_per_dag_on_2_and_per_run_on_3() {
        let s = ti(Waiting::Scheduled);
        let mut occ = pool(1.0);
        occ.per_dag.insert("d".into(), 2);
        occ.per_run.insert(("d".into(), "other".into()), 2);
        assert_eq!(reason_with(&s, &occ, false, &[]), Reason::MaxActiveTasks);
        assert_eq!(reason_with(&s, &occ, true, &[]), Reason::SchedulerCapacity);
        occ.per_run.insert(("d".into(), "r".into()), 2);
        assert_eq!(reason_with(&s, &occ, true, &[]), Reason::MaxActiveTasks);
    }

    #[test]
    fn task_limits_apply_only_where_the_dag_has_them() {
        let s = ti(Waiting::Scheduled);
        let mut occ = pool(1.0);
        occ.per_task.insert(("d".into(), "t".into()), 1);
        occ.per_run_task
            .insert(("d".into(), "r".into(), "t".into()), 1);
        let per_dag = TaskLimits {
            per_dag: Some(1),
            per_dagrun: None,
        };
        let per_run = TaskLimits {
            per_dag: None,
            per_dagrun: Some(1),
        };
        assert_eq!(
            reason_with(&s, &occ, true, &[per_dag]),
            Reason::MaxActiveTisPerDag
        );
        assert_eq!(
            reason_with(&s, &occ, true, &[per_run]),
            Reason::MaxActiveTisPerDagrun
        );
        let none = WaitingTis {
            task_limits: false,
            ..s
        };
        assert_eq!(
            reason_with(&none, &occ, true, &[per_dag]),
            Reason::SchedulerCapacity
        );
    }

    #[test]
    fn queued_and_deferred() {
        let occ = Occupancy::default();
        assert_eq!(
            reason_with(&ti(Waiting::Queued), &occ, true, &[]),
            Reason::Executor
        );
        assert_eq!(
            reason_with(&ti(Waiting::Deferred), &occ, true, &[]),
            Reason::Triggerer
        );
        let live = WaitingTis {
            trigger_live: true,
            ..ti(Waiting::Deferred)
        };
        assert_eq!(reason_with(&live, &occ, true, &[]), Reason::Trigger);
        let scene = Scene {
            scheduler_alive: false,
            max_active_tasks_per_run: true,
            backfill_by_job: false,
            occupancy: &occ,
            limits: &HashMap::new(),
        };
        assert_eq!(
            task_reason(&ti(Waiting::Queued), &scene),
            Reason::NoScheduler
        );
        assert_eq!(
            task_reason(&ti(Waiting::Scheduled), &scene),
            Reason::NoScheduler
        );
    }

    #[test]
    fn runs() {
        let r = QueuedRuns {
            dag_id: "d".into(),
            count: 1,
            since: 0.0,
            dag_paused: false,
            max_active_runs: Some(1),
            running: 1,
        };
        assert_eq!(run_reason(&r, false), Reason::NoScheduler);
        assert_eq!(run_reason(&r, true), Reason::MaxActiveRuns);
        let free = QueuedRuns {
            running: 0,
            ..r.clone()
        };
        assert_eq!(run_reason(&free, true), Reason::SchedulerCapacity);
        let unset = QueuedRuns {
            max_active_runs: None,
            ..free.clone()
        };
        assert_eq!(run_reason(&unset, true), Reason::MaxActiveRuns);
        let paused = QueuedRuns {
            dag_paused: true,
            ..r
        };
        assert_eq!(run_reason(&paused, true), Reason::DagPaused);
    }

    #[test]
    fn limits_from_serialized_json() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"dag": {"tasks": [
                {"__var": {"task_id": "a", "max_active_tis_per_dag": 2}, "__type": "operator"},
                {"__var": {"task_id": "m", "partial_kwargs": {"max_active_tis_per_dagrun": 3}}},
                {"task_id": "plain"}
            ]}}"#,
        )
        .unwrap();
        let l = task_limits(&v);
        assert_eq!(
            l["a"],
            TaskLimits {
                per_dag: Some(2),
                per_dagrun: None
            }
        );
        assert_eq!(
            l["m"],
            TaskLimits {
                per_dag: None,
                per_dagrun: Some(3)
            }
        );
        assert!(!l.contains_key("plain"));
    }
}
