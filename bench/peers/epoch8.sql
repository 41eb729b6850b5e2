-- epoch8/airflow-exporter's scrape-time SQL (airflow-2 branch, as described in
-- ../shared/reference/peers.md sections (b) and (e)), written out as the SQL that
-- SQLAlchemy emits, for the benchmark only. Every scrape runs all of it, synchronously,
-- with no time window, no cache and no timeout:
--   1. GROUP BY over all of dag_run              -> airflow_dag_status
--   2. a window function over all of dag_run     -> airflow_dag_last_status
--   3. GROUP BY over all of task_instance        -> airflow_task_status
--   4. durations of running runs                 -> airflow_dag_run_duration
--   5. one SerializedDagModel.get_dag(dag_id) per DAG (the N+1 DagBag lookups that fetch
--      the owners/labels): the runner executes it once per active DAG ("-- foreach:").
-- Column names are Airflow 2.10's (dag.is_active; on Airflow 3 the filter is NOT is_stale).

-- name: 1_dag_status
SELECT dag_status.dag_id, dag_status.state, dag_status.count, dag.owners
FROM (SELECT dag_run.dag_id AS dag_id, dag_run.state AS state, count(dag_run.state) AS count
      FROM dag_run GROUP BY dag_run.dag_id, dag_run.state) AS dag_status
JOIN dag ON dag.dag_id = dag_status.dag_id
WHERE dag.is_active = true AND dag.is_paused = false;

-- name: 2_dag_last_status
SELECT last.dag_id, last.state, dag.owners
FROM (SELECT dag_run.dag_id AS dag_id, dag_run.state AS state,
             row_number() OVER (PARTITION BY dag_run.dag_id ORDER BY dag_run.updated_at DESC NULLS LAST) AS rn
      FROM dag_run) AS last
JOIN dag ON dag.dag_id = last.dag_id
WHERE last.rn = 1 AND dag.is_active = true AND dag.is_paused = false;

-- name: 3_task_status
SELECT task_status.dag_id, task_status.task_id, task_status.state, task_status.cnt, dag.owners
FROM (SELECT task_instance.dag_id AS dag_id, task_instance.task_id AS task_id, task_instance.state AS state,
             count(task_instance.dag_id) AS cnt
      FROM task_instance GROUP BY task_instance.dag_id, task_instance.task_id, task_instance.state) AS task_status
JOIN dag ON dag.dag_id = task_status.dag_id
WHERE dag.is_active = true AND dag.is_paused = false;

-- name: 4_dag_run_duration
SELECT dag_run.dag_id, dag_run.start_date
FROM dag_run JOIN dag ON dag.dag_id = dag_run.dag_id
WHERE dag_run.state = 'running' AND dag.is_active = true AND dag.is_paused = false;

-- name: 5_serialized_dag_per_dag
-- foreach: SELECT dag_id FROM dag WHERE is_active = true AND is_paused = false ORDER BY dag_id
SELECT serialized_dag.dag_id, serialized_dag.fileloc, serialized_dag.data, serialized_dag.data_compressed,
       serialized_dag.last_updated, serialized_dag.dag_hash, serialized_dag.processor_subdir
FROM serialized_dag WHERE serialized_dag.dag_id = %(dag_id)s;
