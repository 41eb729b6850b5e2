-- The original toolbox's 38 diagnostic queries ("Apache Airflow Utilities",
-- debugging/system_diagnostics/dag_diagnostics.py, DiagnosticQueries), re-written
-- FOR THE BENCHMARK ONLY from the description in the inventory (section 2.4): same
-- tables, same filters and the same shape (whole-table scans, exact COUNT(*), range
-- self-joins, LIKE over serialized JSON), PostgreSQL only, as the original.
--
-- Parameters, substituted by run_sql_timing.py: {days} = analysis window in days
-- (the original's default 7) and {half} = {days} // 2. Column names are Airflow 2.10's
-- (dag_run.execution_date, task_fail, sla_miss). #13 keeps the original's reference to
-- task_instance.execution_date, which does not exist since Airflow 2.2, so it fails on
-- 2.10 exactly as the original does.
--
-- The original set no statement_timeout; the runner does (default 60 s), so the
-- O(n^2) range self-joins (#6, #38) and the same-hour self-join (#34) cannot run forever.
-- Statements are separated by lines "-- name: <n>_<method>".

-- name: 01_get_serialized_dag_analysis_query
SELECT dag_id, fileloc,
       CASE WHEN data_compressed IS NOT NULL THEN 'compressed' ELSE 'uncompressed' END AS compression,
       octet_length(data::json::text) AS json_bytes,
       round(octet_length(data::json::text) / 1024.0, 2) AS json_kb,
       round(octet_length(data::json::text) / 1048576.0, 2) AS json_mb,
       pg_column_size(data) AS storage_bytes,
       round(pg_column_size(data) / 1024.0, 2) AS storage_kb,
       round(pg_column_size(data) / 1048576.0, 2) AS storage_mb,
       EXTRACT(DAY FROM (CURRENT_TIMESTAMP - last_updated)) AS days_since_update,
       (length(data::text) - length(replace(data::text, '"task_id"', ''))) / length('"task_id"') AS est_tasks,
       CASE WHEN data::text LIKE '%BashOperator%' THEN 'Bash'
            WHEN data::text LIKE '%PythonOperator%' THEN 'Python'
            WHEN data::text LIKE '%S3%' THEN 'S3'
            WHEN data::text LIKE '%Glue%' THEN 'Glue'
            WHEN data::text LIKE '%Kubernetes%' THEN 'Kubernetes'
            WHEN data::text LIKE '%Docker%' THEN 'Docker' ELSE 'Other' END AS primary_operator,
       CASE WHEN data::text LIKE '%depends_on_past%' THEN 'depends_on_past'
            WHEN data::text LIKE '%retries%' THEN 'retries'
            WHEN data::text LIKE '%pool%' THEN 'pool'
            WHEN data::text LIKE '%sla%' THEN 'sla' ELSE 'simple' END AS complexity,
       length(data::text) AS total_length, last_updated, dag_hash, processor_subdir
FROM serialized_dag
WHERE data IS NOT NULL
ORDER BY length(data::text) DESC;

-- name: 02_get_performance_analysis_query
SELECT dag_id,
       COUNT(*) AS total_runs,
       COUNT(*) FILTER (WHERE state = 'success') AS successful_runs,
       COUNT(*) FILTER (WHERE state = 'failed') AS failed_runs,
       COUNT(*) FILTER (WHERE state = 'running') AS running_runs,
       COUNT(*) FILTER (WHERE state = 'queued') AS queued_runs,
       ROUND(100.0 * COUNT(*) FILTER (WHERE state = 'success') / NULLIF(COUNT(*), 0), 2) AS success_rate,
       AVG(EXTRACT(EPOCH FROM (end_date - start_date))) AS avg_runtime_seconds,
       MAX(EXTRACT(EPOCH FROM (end_date - start_date))) AS max_runtime_seconds,
       MIN(EXTRACT(EPOCH FROM (end_date - start_date))) AS min_runtime_seconds,
       COUNT(DISTINCT DATE(execution_date)) AS active_days
FROM dag_run
WHERE execution_date >= CURRENT_DATE - INTERVAL '{days} days'
GROUP BY dag_id
ORDER BY total_runs DESC;

-- name: 03_get_task_failure_analysis_query
SELECT tf.dag_id, tf.task_id, COUNT(*) AS failure_count,
       MIN(tf.start_date) AS first_failure, MAX(tf.start_date) AS last_failure,
       COUNT(DISTINCT DATE(tf.start_date)) AS failure_days,
       AVG(EXTRACT(EPOCH FROM (tf.end_date - tf.start_date))) AS avg_failure_duration
FROM task_fail tf
WHERE tf.start_date >= CURRENT_DATE - INTERVAL '{days} days'
GROUP BY tf.dag_id, tf.task_id
ORDER BY failure_count DESC
LIMIT 50;

-- name: 04_get_serialization_instability_query
SELECT dag_id, COUNT(*) AS versions, MIN(last_updated) AS first_seen, MAX(last_updated) AS last_seen,
       COUNT(DISTINCT dag_hash) AS distinct_hashes,
       AVG(octet_length(data::json::text)) AS avg_size, MAX(octet_length(data::json::text)) AS max_size,
       MIN(octet_length(data::json::text)) AS min_size
FROM serialized_dag
WHERE last_updated >= CURRENT_DATE - INTERVAL '{days} days'
GROUP BY dag_id
HAVING COUNT(DISTINCT dag_hash) > 3;

-- name: 05_get_traffic_pattern_hourly_query
WITH slots AS (
  SELECT EXTRACT(HOUR FROM execution_date) AS hour_of_day, EXTRACT(DOW FROM execution_date) AS dow,
         DATE(execution_date) AS day, COUNT(*) AS runs, COUNT(DISTINCT dag_id) AS unique_dags,
         AVG(EXTRACT(EPOCH FROM (end_date - start_date))) AS avg_duration
  FROM dag_run
  WHERE execution_date >= CURRENT_DATE - INTERVAL '{days} days'
  GROUP BY 1, 2, 3)
SELECT hour_of_day, SUM(runs) AS total_runs, AVG(runs) AS avg_runs, MAX(runs) AS max_runs,
       AVG(unique_dags) AS avg_unique_dags, AVG(avg_duration) AS avg_duration
FROM slots GROUP BY hour_of_day ORDER BY hour_of_day;

-- name: 06_get_traffic_pattern_concurrent_query
WITH runs AS (
  SELECT start_date, COALESCE(end_date, CURRENT_TIMESTAMP) AS end_date
  FROM dag_run
  WHERE execution_date >= CURRENT_DATE - INTERVAL '{days} days' AND start_date IS NOT NULL),
points AS (
  SELECT start_date AS t FROM runs UNION SELECT end_date FROM runs),
conc AS (
  SELECT p.t, COUNT(r.start_date) AS concurrent
  FROM points p LEFT JOIN runs r ON r.start_date <= p.t AND r.end_date > p.t
  GROUP BY p.t)
SELECT MAX(concurrent), AVG(concurrent),
       PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY concurrent),
       PERCENTILE_CONT(0.99) WITHIN GROUP (ORDER BY concurrent)
FROM conc WHERE concurrent > 0;

-- name: 07_get_traffic_pattern_dag_frequency_query
SELECT dag_id, COUNT(*) AS total_runs, COUNT(DISTINCT DATE(execution_date)) AS active_days,
       ROUND(COUNT(*)::numeric / NULLIF(COUNT(DISTINCT DATE(execution_date)), 0), 2) AS runs_per_day,
       AVG(EXTRACT(EPOCH FROM (end_date - start_date))) AS avg_duration,
       STDDEV(EXTRACT(EPOCH FROM (end_date - start_date))) AS stddev_duration,
       CASE WHEN STDDEV(EXTRACT(EPOCH FROM (end_date - start_date))) > 0.5 * AVG(EXTRACT(EPOCH FROM (end_date - start_date))) THEN 'High Variance'
            WHEN STDDEV(EXTRACT(EPOCH FROM (end_date - start_date))) > 0.3 * AVG(EXTRACT(EPOCH FROM (end_date - start_date))) THEN 'Medium Variance'
            ELSE 'Low Variance' END AS variance_class,
       EXTRACT(EPOCH FROM (MAX(execution_date) - MIN(execution_date))) / 3600 AS span_hours
FROM dag_run
WHERE execution_date >= CURRENT_DATE - INTERVAL '{days} days' AND end_date IS NOT NULL AND start_date IS NOT NULL
GROUP BY dag_id HAVING COUNT(*) > 1
ORDER BY runs_per_day DESC;

-- name: 08_get_database_table_sizes_query
SELECT tablename, pg_size_pretty(pg_total_relation_size('public.' || tablename)) AS total_size,
       pg_size_pretty(pg_relation_size('public.' || tablename)) AS table_size,
       pg_size_pretty(pg_total_relation_size('public.' || tablename) - pg_relation_size('public.' || tablename)) AS index_size,
       pg_total_relation_size('public.' || tablename) AS total_bytes
FROM pg_tables WHERE schemaname = 'public'
ORDER BY pg_total_relation_size('public.' || tablename) DESC LIMIT 20;

-- name: 09_get_database_table_row_counts_query
SELECT 'task_instance' AS table_name, COUNT(*) AS row_count FROM task_instance
UNION ALL SELECT 'dag_run', COUNT(*) FROM dag_run
UNION ALL SELECT 'dag_run_running', COUNT(*) FILTER (WHERE state = 'running') FROM dag_run
UNION ALL SELECT 'dag_run_queued', COUNT(*) FILTER (WHERE state = 'queued') FROM dag_run
UNION ALL SELECT 'dag_run_failed', COUNT(*) FILTER (WHERE state = 'failed') FROM dag_run
UNION ALL SELECT 'log', COUNT(*) FROM log
UNION ALL SELECT 'job', COUNT(*) FROM job
UNION ALL SELECT 'xcom', COUNT(*) FROM xcom;

-- name: 10_get_database_index_usage_query
SELECT schemaname, relname, indexrelname, idx_scan, idx_tup_read, idx_tup_fetch,
       pg_size_pretty(pg_relation_size(indexrelid)) AS index_size, pg_relation_size(indexrelid) AS index_bytes
FROM pg_stat_user_indexes WHERE schemaname = 'public'
ORDER BY idx_scan ASC, pg_relation_size(indexrelid) DESC LIMIT 30;

-- name: 11_get_database_lock_contention_query
SELECT a.pid, a.usename, a.application_name, a.state, left(a.query, 200), a.wait_event_type, a.wait_event,
       now() - a.query_start AS duration, l.locktype, l.mode
FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
WHERE NOT l.granted AND a.state <> 'idle' LIMIT 20;

-- name: 12_get_database_connection_stats_query
SELECT COUNT(*) AS total, COUNT(*) FILTER (WHERE state = 'active') AS active,
       COUNT(*) FILTER (WHERE state = 'idle') AS idle,
       COUNT(*) FILTER (WHERE state = 'idle in transaction') AS idle_in_tx,
       COUNT(*) FILTER (WHERE wait_event_type IS NOT NULL) AS waiting,
       MAX(EXTRACT(EPOCH FROM (now() - backend_start))) AS max_age,
       AVG(EXTRACT(EPOCH FROM (now() - backend_start))) AS avg_age
FROM pg_stat_activity WHERE pid <> pg_backend_pid();

-- name: 13_get_database_growth_rate_query
SELECT 'task_instance' AS table_name, COUNT(*) AS current_rows,
       COUNT(*) FILTER (WHERE execution_date >= CURRENT_DATE - INTERVAL '{days} days') AS recent_rows,
       COUNT(*) FILTER (WHERE execution_date >= CURRENT_DATE - INTERVAL '{days} days') / {days}.0 AS rows_per_day
FROM task_instance
UNION ALL
SELECT 'dag_run', COUNT(*), COUNT(*) FILTER (WHERE execution_date >= CURRENT_DATE - INTERVAL '{days} days'),
       COUNT(*) FILTER (WHERE execution_date >= CURRENT_DATE - INTERVAL '{days} days') / {days}.0
FROM dag_run
UNION ALL
SELECT 'log', COUNT(*), COUNT(*) FILTER (WHERE dttm >= CURRENT_DATE - INTERVAL '{days} days'),
       COUNT(*) FILTER (WHERE dttm >= CURRENT_DATE - INTERVAL '{days} days') / {days}.0
FROM log;

-- name: 14_get_task_duration_trends_query
WITH d AS (
  SELECT dag_id, task_id, start_date, EXTRACT(EPOCH FROM (end_date - start_date)) AS dur
  FROM task_instance
  WHERE start_date >= CURRENT_DATE - INTERVAL '{days} days' AND state = 'success'
    AND end_date IS NOT NULL AND EXTRACT(EPOCH FROM (end_date - start_date)) > 0)
SELECT dag_id, task_id, COUNT(*), AVG(dur), STDDEV(dur), MIN(dur), MAX(dur),
       PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY dur), PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY dur),
       AVG(dur) FILTER (WHERE start_date >= CURRENT_DATE - INTERVAL '{half} days') AS recent_avg,
       AVG(dur) FILTER (WHERE start_date < CURRENT_DATE - INTERVAL '{half} days') AS older_avg,
       100.0 * (AVG(dur) FILTER (WHERE start_date >= CURRENT_DATE - INTERVAL '{half} days')
                - AVG(dur) FILTER (WHERE start_date < CURRENT_DATE - INTERVAL '{half} days'))
             / NULLIF(AVG(dur) FILTER (WHERE start_date < CURRENT_DATE - INTERVAL '{half} days'), 0) AS pct_change
FROM d GROUP BY dag_id, task_id HAVING COUNT(*) >= 5
ORDER BY ABS(COALESCE(100.0 * (AVG(dur) FILTER (WHERE start_date >= CURRENT_DATE - INTERVAL '{half} days')
                - AVG(dur) FILTER (WHERE start_date < CURRENT_DATE - INTERVAL '{half} days'))
             / NULLIF(AVG(dur) FILTER (WHERE start_date < CURRENT_DATE - INTERVAL '{half} days'), 0), 0)) DESC
LIMIT 30;

-- name: 15_get_task_retry_patterns_query
SELECT dag_id, task_id, COUNT(*) AS total_attempts, COUNT(DISTINCT run_id) AS unique_runs,
       COUNT(*) FILTER (WHERE try_number > 1) AS retry_attempts, MAX(try_number) AS max_try,
       COUNT(*) FILTER (WHERE state = 'success') AS successes, COUNT(*) FILTER (WHERE state = 'failed') AS failures,
       ROUND(100.0 * COUNT(*) FILTER (WHERE try_number > 1) / COUNT(*), 2) AS retry_rate,
       ROUND(100.0 * COUNT(*) FILTER (WHERE state = 'failed') / COUNT(DISTINCT run_id), 2) AS failure_rate_per_run
FROM task_instance
WHERE start_date >= CURRENT_DATE - INTERVAL '{days} days'
GROUP BY dag_id, task_id HAVING COUNT(*) FILTER (WHERE try_number > 1) > 0
ORDER BY retry_rate DESC LIMIT 30;

-- name: 16_get_task_queue_depth_query
WITH hourly AS (
  SELECT DATE_TRUNC('hour', start_date) AS hour,
         COUNT(*) FILTER (WHERE state = 'queued') AS queued,
         COUNT(*) FILTER (WHERE state = 'running') AS running,
         COUNT(*) FILTER (WHERE state = 'scheduled') AS scheduled
  FROM task_instance WHERE start_date >= CURRENT_DATE - INTERVAL '{days} days'
  GROUP BY 1)
SELECT MAX(queued), AVG(queued), PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY queued),
       MAX(running), AVG(running), MAX(scheduled), AVG(scheduled), COUNT(*) AS sample_hours
FROM hourly;

-- name: 17_get_executor_queue_lag_query
SELECT dag_id, task_id, COUNT(*), AVG(EXTRACT(EPOCH FROM (start_date - queued_dttm))) AS avg_lag,
       MIN(EXTRACT(EPOCH FROM (start_date - queued_dttm))), MAX(EXTRACT(EPOCH FROM (start_date - queued_dttm))),
       PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM (start_date - queued_dttm))) AS p95_lag
FROM task_instance
WHERE start_date >= CURRENT_DATE - INTERVAL '{days} days' AND queued_dttm IS NOT NULL
  AND state IN ('success', 'failed', 'running') AND start_date >= queued_dttm
GROUP BY dag_id, task_id HAVING COUNT(*) >= 5
ORDER BY p95_lag DESC LIMIT 30;

-- name: 18_get_pool_utilization_query
WITH hourly AS (
  SELECT sp.pool, sp.slots, DATE_TRUNC('hour', ti.start_date) AS hour, COUNT(ti.*) AS tis,
         COUNT(ti.*) FILTER (WHERE ti.state = 'running') AS running
  FROM slot_pool sp JOIN task_instance ti ON ti.pool = sp.pool
  WHERE ti.start_date >= CURRENT_DATE - INTERVAL '{days} days' AND sp.pool <> 'default_pool'
  GROUP BY sp.pool, sp.slots, DATE_TRUNC('hour', ti.start_date))
SELECT pool, slots, AVG(tis), MAX(tis), AVG(running), MAX(running),
       ROUND(100.0 * AVG(running) / NULLIF(slots, 0), 2) AS avg_util, ROUND(100.0 * MAX(running) / NULLIF(slots, 0), 2) AS peak_util
FROM hourly GROUP BY pool, slots;

-- name: 19_get_zombie_tasks_query
SELECT dag_id, task_id, run_id, start_date, hostname, pid,
       EXTRACT(EPOCH FROM (CURRENT_TIMESTAMP - start_date)) / 3600 AS hours_running
FROM task_instance
WHERE state = 'running' AND start_date < CURRENT_TIMESTAMP - INTERVAL '6 hours'
ORDER BY start_date LIMIT 50;

-- name: 20_get_sla_miss_patterns_query
SELECT dag_id, task_id, COUNT(*) AS misses, MIN(timestamp), MAX(timestamp), COUNT(DISTINCT DATE(timestamp)) AS miss_days,
       AVG(EXTRACT(EPOCH FROM (timestamp - execution_date))) AS avg_delay
FROM sla_miss WHERE timestamp >= CURRENT_DATE - INTERVAL '{days} days'
GROUP BY dag_id, task_id ORDER BY misses DESC LIMIT 30;

-- name: 21_get_execution_time_variance_query
SELECT dag_id, task_id, COUNT(*), AVG(duration), STDDEV(duration), MIN(duration), MAX(duration),
       ROUND((100.0 * STDDEV(duration) / NULLIF(AVG(duration), 0))::numeric, 2) AS cv,
       MAX(duration) / NULLIF(MIN(duration), 0) AS range_ratio
FROM task_instance
WHERE start_date >= CURRENT_DATE - INTERVAL '{days} days' AND state = 'success' AND duration IS NOT NULL
GROUP BY dag_id, task_id HAVING COUNT(*) >= 5 AND STDDEV(duration) IS NOT NULL
ORDER BY cv DESC NULLS LAST LIMIT 30;

-- name: 22_get_schedule_drift_query
SELECT dag_id, COUNT(*), AVG(EXTRACT(EPOCH FROM (start_date - execution_date))) AS avg_drift,
       MIN(EXTRACT(EPOCH FROM (start_date - execution_date))), MAX(EXTRACT(EPOCH FROM (start_date - execution_date))),
       STDDEV(EXTRACT(EPOCH FROM (start_date - execution_date))),
       PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM (start_date - execution_date))),
       COUNT(*) FILTER (WHERE start_date - execution_date > INTERVAL '5 minutes'),
       COUNT(*) FILTER (WHERE start_date - execution_date > INTERVAL '1 hour')
FROM dag_run
WHERE execution_date >= CURRENT_DATE - INTERVAL '{days} days' AND state IN ('success', 'failed', 'running')
GROUP BY dag_id HAVING AVG(EXTRACT(EPOCH FROM (start_date - execution_date))) > 60
ORDER BY avg_drift DESC LIMIT 30;

-- name: 23_get_catchup_backlog_query
SELECT dag_id, COUNT(*) AS queued_runs, MIN(execution_date), MAX(execution_date),
       EXTRACT(EPOCH FROM (MAX(execution_date) - MIN(execution_date))) / 3600 AS span_hours,
       EXTRACT(EPOCH FROM (CURRENT_TIMESTAMP - MIN(execution_date))) / 3600 AS oldest_age_hours
FROM dag_run WHERE state = 'queued'
GROUP BY dag_id ORDER BY queued_runs DESC LIMIT 30;

-- name: 24_get_scheduling_delay_query
SELECT dag_id, AVG(EXTRACT(EPOCH FROM (start_date - execution_date))) AS avg_delay,
       PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM (start_date - execution_date))),
       PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM (start_date - execution_date))),
       MAX(EXTRACT(EPOCH FROM (start_date - execution_date))),
       COUNT(*) FILTER (WHERE start_date - execution_date > INTERVAL '5 minutes'),
       COUNT(*) FILTER (WHERE start_date - execution_date > INTERVAL '1 hour'),
       ROUND(100.0 * COUNT(*) FILTER (WHERE start_date - execution_date > INTERVAL '5 minutes') / COUNT(*), 2)
FROM dag_run
WHERE execution_date >= CURRENT_DATE - INTERVAL '{days} days' AND start_date IS NOT NULL
GROUP BY dag_id HAVING AVG(EXTRACT(EPOCH FROM (start_date - execution_date))) > 30
ORDER BY avg_delay DESC LIMIT 30;

-- name: 25_get_failure_prediction_query
WITH s AS (
  SELECT dag_id, task_id, COUNT(*) AS runs, COUNT(*) FILTER (WHERE state = 'failed') AS failures,
         COUNT(*) FILTER (WHERE state = 'failed' AND start_date >= CURRENT_DATE - INTERVAL '{half} days') AS recent_failures,
         COUNT(*) FILTER (WHERE state = 'failed' AND start_date < CURRENT_DATE - INTERVAL '{half} days') AS old_failures
  FROM task_instance
  WHERE start_date >= CURRENT_DATE - INTERVAL '{days} days' AND state IN ('success', 'failed')
  GROUP BY dag_id, task_id)
SELECT *, ROUND(100.0 * failures / runs, 2) AS failure_rate,
       CASE WHEN recent_failures > old_failures AND 100.0 * failures / runs > 10 THEN 'Increasing'
            WHEN recent_failures < old_failures AND 100.0 * failures / runs > 5 THEN 'Decreasing'
            WHEN 100.0 * failures / runs > 20 THEN 'High' WHEN 100.0 * failures / runs > 10 THEN 'Moderate'
            ELSE 'Low' END AS trend,
       100.0 * (recent_failures - old_failures) / NULLIF(old_failures, 0) AS trend_pct
FROM s WHERE failures > 0 ORDER BY failure_rate DESC LIMIT 30;

-- name: 26_get_capacity_forecasting_query
WITH daily AS (
  SELECT DATE(start_date) AS day, COUNT(*) AS tasks, COUNT(DISTINCT dag_id) AS dags,
         AVG(EXTRACT(EPOCH FROM (end_date - start_date))) AS avg_duration
  FROM task_instance WHERE start_date >= CURRENT_DATE - INTERVAL '{days} days'
  GROUP BY DATE(start_date))
SELECT AVG(tasks), AVG(dags), AVG(avg_duration),
       REGR_SLOPE(tasks, EXTRACT(EPOCH FROM day) / 86400) AS task_growth_per_day,
       REGR_SLOPE(dags, EXTRACT(EPOCH FROM day) / 86400) AS dag_growth_per_day
FROM daily;

-- name: 27_get_performance_degradation_query
WITH weekly AS (
  SELECT dag_id, task_id, DATE_TRUNC('week', start_date) AS week, AVG(duration) AS avg_duration, COUNT(*) AS n
  FROM task_instance
  WHERE start_date >= CURRENT_DATE - INTERVAL '{days} days' AND state = 'success' AND duration IS NOT NULL
  GROUP BY 1, 2, 3 HAVING COUNT(*) >= 3),
reg AS (
  SELECT dag_id, task_id, COUNT(*) AS weeks,
         REGR_SLOPE(avg_duration, EXTRACT(EPOCH FROM week) / 604800) AS slope,
         REGR_R2(avg_duration, EXTRACT(EPOCH FROM week) / 604800) AS r2
  FROM weekly GROUP BY dag_id, task_id HAVING COUNT(*) >= 3)
SELECT * FROM reg WHERE slope > 0 AND r2 > 0.3 ORDER BY slope DESC LIMIT 30;

-- name: 28_get_anomaly_detection_query
WITH stats AS (
  SELECT dag_id, task_id, AVG(duration) AS mean, STDDEV(duration) AS sd
  FROM task_instance
  WHERE start_date >= CURRENT_DATE - INTERVAL '{days} days' AND state = 'success' AND duration IS NOT NULL
  GROUP BY dag_id, task_id HAVING COUNT(*) >= 10),
z AS (
  SELECT ti.dag_id, ti.task_id, ti.start_date, ti.duration, s.mean, (ti.duration - s.mean) / NULLIF(s.sd, 0) AS z
  FROM task_instance ti JOIN stats s ON s.dag_id = ti.dag_id AND s.task_id = ti.task_id
  WHERE ti.start_date >= CURRENT_DATE - INTERVAL '{days} days' AND ti.state = 'success')
SELECT dag_id, task_id, COUNT(*) AS anomalies, MAX(start_date), AVG(ABS(z)), MAX(ABS(z)), AVG(duration), AVG(mean)
FROM z WHERE ABS(z) > 3 GROUP BY dag_id, task_id ORDER BY anomalies DESC LIMIT 30;

-- name: 29_get_seasonal_patterns_query
WITH hourly AS (
  SELECT EXTRACT(DOW FROM start_date) AS dow, EXTRACT(HOUR FROM start_date) AS hour, COUNT(*) AS n
  FROM task_instance
  WHERE start_date >= CURRENT_DATE - INTERVAL '{days} days' AND state = 'success'
  GROUP BY 1, 2)
SELECT dow, CASE dow WHEN 0 THEN 'Sunday' WHEN 1 THEN 'Monday' WHEN 2 THEN 'Tuesday' WHEN 3 THEN 'Wednesday'
                     WHEN 4 THEN 'Thursday' WHEN 5 THEN 'Friday' ELSE 'Saturday' END,
       AVG(n), STDDEV(n), MAX(n), MIN(n), ROUND((100.0 * STDDEV(n) / NULLIF(AVG(n), 0))::numeric, 2) AS cv
FROM hourly GROUP BY dow ORDER BY dow;

-- name: 30_get_scheduler_heartbeat_query
WITH gaps AS (
  SELECT hostname, latest_heartbeat,
         EXTRACT(EPOCH FROM (latest_heartbeat - LAG(latest_heartbeat) OVER (PARTITION BY hostname ORDER BY latest_heartbeat))) AS gap
  FROM job WHERE job_type = 'SchedulerJob' AND latest_heartbeat >= CURRENT_DATE - INTERVAL '{days} days')
SELECT AVG(gap), MAX(gap), PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY gap),
       COUNT(*) FILTER (WHERE gap > 60), COUNT(*) FILTER (WHERE gap > 300)
FROM gaps WHERE gap IS NOT NULL;

-- name: 31_get_scheduler_loop_duration_query
WITH loops AS (
  SELECT EXTRACT(EPOCH FROM (latest_heartbeat - LAG(latest_heartbeat) OVER (PARTITION BY hostname ORDER BY latest_heartbeat))) AS loop
  FROM job WHERE job_type = 'SchedulerJob' AND latest_heartbeat >= CURRENT_DATE - INTERVAL '{days} days')
SELECT AVG(loop), PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY loop), PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY loop),
       MAX(loop), COUNT(*) FILTER (WHERE loop > 10)
FROM loops WHERE loop > 0;

-- name: 32_get_queued_tasks_duration_query
SELECT dag_id, task_id, AVG(EXTRACT(EPOCH FROM (start_date - queued_dttm))) AS avg_wait,
       PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM (start_date - queued_dttm))),
       PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM (start_date - queued_dttm))),
       MAX(EXTRACT(EPOCH FROM (start_date - queued_dttm))),
       COUNT(*) FILTER (WHERE start_date - queued_dttm > INTERVAL '60 seconds'),
       COUNT(*) FILTER (WHERE start_date - queued_dttm > INTERVAL '300 seconds')
FROM task_instance
WHERE queued_dttm >= CURRENT_DATE - INTERVAL '{days} days' AND start_date IS NOT NULL
GROUP BY dag_id, task_id HAVING AVG(EXTRACT(EPOCH FROM (start_date - queued_dttm))) > 10
ORDER BY avg_wait DESC LIMIT 30;

-- name: 33_get_error_clustering_query
SELECT dag_id, task_id, COUNT(*) AS occurrences, MAX(end_date), MIN(end_date), COUNT(DISTINCT DATE(start_date)),
       'Failed task' AS error_snippet,
       CASE WHEN COUNT(*) > 50 THEN 'Very High' WHEN COUNT(*) > 20 THEN 'High' WHEN COUNT(*) > 10 THEN 'Medium' ELSE 'Low' END
FROM task_instance
WHERE state = 'failed' AND start_date >= CURRENT_DATE - INTERVAL '{days} days'
GROUP BY dag_id, task_id ORDER BY occurrences DESC LIMIT 30;

-- name: 34_get_error_correlation_query
WITH f AS (
  SELECT dag_id || '.' || task_id AS task, DATE_TRUNC('hour', start_date) AS hour
  FROM task_fail WHERE start_date >= CURRENT_DATE - INTERVAL '{days} days')
SELECT a.task, b.task, COUNT(*) AS co_occurrences
FROM f a JOIN f b ON a.hour = b.hour AND a.task < b.task
GROUP BY a.task, b.task HAVING COUNT(*) >= 3
ORDER BY co_occurrences DESC LIMIT 20;

-- name: 35_get_transient_vs_persistent_query
WITH per_run AS (
  SELECT dag_id, task_id, run_id, MAX(try_number) AS max_try, BOOL_OR(state = 'success') AS eventually_succeeded
  FROM task_instance
  WHERE try_number > 1 AND start_date >= CURRENT_DATE - INTERVAL '{days} days'
  GROUP BY dag_id, task_id, run_id)
SELECT dag_id, task_id, COUNT(*) AS retry_runs, COUNT(*) FILTER (WHERE eventually_succeeded) AS success_after_retry,
       COUNT(*) FILTER (WHERE NOT eventually_succeeded) AS persistent,
       ROUND(100.0 * COUNT(*) FILTER (WHERE eventually_succeeded) / COUNT(*), 2) AS retry_success_pct,
       CASE WHEN 100.0 * COUNT(*) FILTER (WHERE eventually_succeeded) / COUNT(*) > 80 THEN 'Transient'
            WHEN 100.0 * COUNT(*) FILTER (WHERE eventually_succeeded) / COUNT(*) > 50 THEN 'Mixed' ELSE 'Persistent' END
FROM per_run GROUP BY dag_id, task_id HAVING COUNT(*) >= 5 ORDER BY retry_runs DESC LIMIT 30;

-- name: 36_get_error_time_patterns_query
WITH f AS (
  SELECT EXTRACT(HOUR FROM start_date) AS hour, EXTRACT(DOW FROM start_date) AS dow, DATE(start_date) AS day, COUNT(*) AS n
  FROM task_fail GROUP BY 1, 2, 3)
SELECT hour, SUM(n) AS total, AVG(n) AS avg_per_day, MAX(n), STDDEV(n),
       CASE WHEN AVG(n) > 1.5 * (SELECT AVG(n) FROM f) THEN 'High' WHEN AVG(n) > (SELECT AVG(n) FROM f) THEN 'Medium' ELSE 'Low' END
FROM f GROUP BY hour ORDER BY total DESC LIMIT 24;

-- name: 37_get_failure_cascade_query
WITH runs AS (
  SELECT dag_id, run_id, COUNT(DISTINCT task_id) AS failed_tasks
  FROM task_instance WHERE state = 'failed' AND start_date >= CURRENT_DATE - INTERVAL '{days} days'
  GROUP BY dag_id, run_id HAVING COUNT(DISTINCT task_id) >= 3)
SELECT dag_id, COUNT(*) AS cascades, AVG(failed_tasks), MAX(failed_tasks), 0 AS avg_cascade_duration_seconds
FROM runs GROUP BY dag_id ORDER BY cascades DESC LIMIT 20;

-- name: 38_get_traffic_pattern_task_concurrency_query
WITH tis AS (
  SELECT start_date, COALESCE(end_date, CURRENT_TIMESTAMP) AS end_date
  FROM task_instance
  WHERE start_date >= CURRENT_DATE - INTERVAL '{days} days' AND state IN ('running', 'queued')),
all_tis AS (
  SELECT start_date, COALESCE(end_date, CURRENT_TIMESTAMP) AS end_date
  FROM task_instance WHERE start_date >= CURRENT_DATE - INTERVAL '{days} days'),
points AS (SELECT start_date AS t FROM all_tis UNION SELECT end_date FROM all_tis),
conc AS (
  SELECT p.t, COUNT(x.start_date) AS concurrent
  FROM points p LEFT JOIN tis x ON x.start_date <= p.t AND x.end_date > p.t
  GROUP BY p.t)
SELECT MAX(concurrent), AVG(concurrent), PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY concurrent),
       PERCENTILE_CONT(0.99) WITHIN GROUP (ORDER BY concurrent)
FROM conc;
