//! Glue mode: windsock keeps the Glue JDBC connection and job in shape,
//! uploads the job script, starts one run for the window and follows it
//! to the end, then reads the manifest the job wrote.
//!
//! Each step compares before it writes: the connection and the job carry a
//! hash of their definition in their description and are updated only when
//! it changes; the script's S3 key is its content hash. A run is never
//! started while another run of the job is in progress (checked in Glue, so
//! it holds across windsock restarts; the job also has
//! `MaxConcurrentRuns = 1`).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_glue::types::{
    ConnectionInput, ConnectionPropertyKey, ConnectionType, ConnectionsList, ExecutionProperty,
    JobCommand, JobRunState, JobUpdate, PhysicalConnectionRequirements, WorkerType,
};
use aws_smithy_types::error::display::DisplayErrorContext;
use tracing::{info, warn};

use super::s3::{self, S3Url};
use super::{Engine, ExportError, Manifest, Request, iso, spec_for};
use crate::config::GlueSettings;
use crate::db::url::DbUrl;
use crate::db::{Db, Dialect};
use crate::metrics::Store;

/// The job script, embedded at build time (`export/glue/windsock_export.py`).
pub const SCRIPT: &str = include_str!("../../export/glue/windsock_export.py");

/// The line of [`SCRIPT`] that [`script`] replaces with the column policy.
const POLICY_LINE: &str = "POLICY_JSON = None\n";

/// The script as uploaded: [`SCRIPT`] with the column policy
/// (`export/glue/policy.json`, the direct export's too) embedded, so the
/// job masks and drops exactly what the direct export does.
pub fn script() -> String {
    let policy = super::mask::POLICY_JSON;
    assert!(
        !policy.contains("\"\"\"") && SCRIPT.matches(POLICY_LINE).count() == 1,
        "the policy cannot be embedded into the job script"
    );
    SCRIPT.replacen(
        POLICY_LINE,
        &format!("POLICY_JSON = r\"\"\"{}\"\"\"\n", policy.trim_end()),
        1,
    )
}

/// First wait between polls of a run.
const POLL_MIN: Duration = Duration::from_secs(1);

fn hash16(text: &str) -> String {
    crate::digest::sha256_hex(text.as_bytes(), 8)
}

fn glue_err(op: &str, e: impl std::error::Error) -> ExportError {
    ExportError::Glue(format!("{op}: {}", DisplayErrorContext(e)))
}

/// The JDBC URL of a target, as Glue's connection wants it.
pub fn jdbc_url(url: &DbUrl) -> Result<String, ExportError> {
    let parsed = url.server_url().ok_or_else(|| {
        ExportError::Glue("Glue mode needs a PostgreSQL or MySQL target".to_owned())
    })?;
    let host = parsed.host_str().unwrap_or("localhost");
    let db = parsed.path().trim_start_matches('/');
    Ok(match url.dialect() {
        Dialect::Postgres => format!(
            "jdbc:postgresql://{host}:{}/{db}",
            parsed.port().unwrap_or(5432)
        ),
        Dialect::MySql => format!("jdbc:mysql://{host}:{}/{db}", parsed.port().unwrap_or(3306)),
        Dialect::Sqlite => {
            return Err(ExportError::Glue(
                "Glue cannot read a SQLite file; use direct mode".to_owned(),
            ));
        }
    })
}

/// The Glue connection windsock wants, and the hash that identifies it.
pub fn connection_input(
    s: &GlueSettings,
    url: &DbUrl,
) -> Result<(ConnectionInput, String), ExportError> {
    let jdbc = match &s.jdbc_url {
        Some(j) => j.clone(),
        None => jdbc_url(url)?,
    };
    let mut props: Vec<(ConnectionPropertyKey, String)> = vec![
        (ConnectionPropertyKey::JdbcConnectionUrl, jdbc),
        (ConnectionPropertyKey::JdbcEnforceSsl, "true".to_owned()),
    ];
    match &s.secret_id {
        Some(secret) => props.push((ConnectionPropertyKey::SecretId, secret.clone())),
        None => {
            let user = url
                .server_url()
                .map(|u| u.username().to_owned())
                .unwrap_or_default();
            props.push((ConnectionPropertyKey::UserName, user));
            props.push((
                ConnectionPropertyKey::Password,
                url.password().unwrap_or_default().to_owned(),
            ));
        }
    }
    // The hash (kept in the description) leaves the password out: anyone
    // who may read the connection could otherwise test guesses against
    // it. Rotate passwords through `secret_id` (Secrets Manager).
    let canonical: Vec<String> = props
        .iter()
        .filter(|(k, _)| *k != ConnectionPropertyKey::Password)
        .map(|(k, v)| format!("{}={v}", k.as_str()))
        .chain([
            format!("subnet={:?}", s.subnet_id),
            format!("sg={:?}", s.security_group_ids),
            format!("az={:?}", s.availability_zone),
        ])
        .collect();
    let hash = hash16(&canonical.join("\n"));
    let mut input = ConnectionInput::builder()
        .name(&s.connection_name)
        .description(format!("managed by windsock; definition {hash}"))
        .connection_type(ConnectionType::Jdbc)
        .set_connection_properties(Some(props.into_iter().collect::<HashMap<_, _>>()));
    if s.subnet_id.is_some() || !s.security_group_ids.is_empty() || s.availability_zone.is_some() {
        input = input.physical_connection_requirements(
            PhysicalConnectionRequirements::builder()
                .set_subnet_id(s.subnet_id.clone())
                .set_security_group_id_list(Some(s.security_group_ids.clone()))
                .set_availability_zone(s.availability_zone.clone())
                .build(),
        );
    }
    let input = input
        .build()
        .map_err(|e| ExportError::Glue(format!("connection definition: {e}")))?;
    Ok((input, hash))
}

/// Creates the connection, or updates it when its definition changed.
/// Returns what was done: `created`, `updated` or `unchanged`.
pub async fn ensure_connection(
    glue: &aws_sdk_glue::Client,
    s: &GlueSettings,
    url: &DbUrl,
) -> Result<&'static str, ExportError> {
    let (input, hash) = connection_input(s, url)?;
    match glue
        .get_connection()
        .name(&s.connection_name)
        .hide_password(true)
        .send()
        .await
    {
        Ok(out) => {
            let current = out
                .connection()
                .and_then(|c| c.description())
                .unwrap_or_default();
            if current.ends_with(&hash) {
                return Ok("unchanged");
            }
            glue.update_connection()
                .name(&s.connection_name)
                .connection_input(input)
                .send()
                .await
                .map_err(|e| glue_err("UpdateConnection", e))?;
            Ok("updated")
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_entity_not_found_exception()) =>
        {
            glue.create_connection()
                .connection_input(input)
                .send()
                .await
                .map_err(|e| glue_err("CreateConnection", e))?;
            Ok("created")
        }
        Err(e) => Err(glue_err("GetConnection", e)),
    }
}

/// Uploads the job script under `<script_location>/windsock_export-<hash>.py`
/// unless that key exists; an existing object must hold exactly this
/// script (whoever may write there could otherwise change what the job
/// runs with the database's credentials). Returns its `s3://` location.
pub async fn upload_script(
    s3c: &aws_sdk_s3::Client,
    location: &S3Url,
) -> Result<String, ExportError> {
    let body = script();
    let key = location.key(&format!("windsock_export-{}.py", hash16(&body)));
    let exists = s3c
        .head_object()
        .bucket(&location.bucket)
        .key(&key)
        .send()
        .await;
    match exists {
        Ok(_) => {
            let stored = s3::get(s3c, &location.bucket, &key)
                .await
                .map_err(|e| ExportError::Glue(format!("reading the job script: {e}")))?;
            if stored != body.as_bytes() {
                return Err(ExportError::Glue(format!(
                    "s3://{}/{key} is not the script windsock uploaded there (it was changed); \
                     refusing to run it: delete the object and windsock uploads it again",
                    location.bucket
                )));
            }
        }
        Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => {
            s3::put(
                s3c,
                &location.bucket,
                &key,
                body.into_bytes(),
                "text/x-python",
            )
            .await
            .map_err(|e| ExportError::Glue(format!("uploading the job script: {e}")))?;
            info!(key = %key, "Glue: job script uploaded.");
        }
        Err(e) => return Err(glue_err("HeadObject", e)),
    }
    Ok(format!("s3://{}/{key}", location.bucket))
}

/// The job definition and its hash. `fixed` are its NonOverridableArguments:
/// what it reads and where it writes, which a caller of StartJobRun cannot
/// change (only the window and the run's labels are per run).
pub fn job_update(
    s: &GlueSettings,
    script: &str,
    fixed: &HashMap<String, String>,
) -> (JobUpdate, String) {
    let fixed_sorted: std::collections::BTreeMap<_, _> = fixed.iter().collect();
    let canonical = format!(
        "{script}|{:?}|{}|{}|{}|{}|{}|{fixed_sorted:?}",
        s.role_arn,
        s.glue_version,
        s.worker_type,
        s.number_of_workers,
        s.timeout_minutes,
        s.connection_name
    );
    let hash = hash16(&canonical);
    let update = JobUpdate::builder()
        .description(format!("managed by windsock; definition {hash}"))
        .set_role(s.role_arn.clone())
        .command(
            JobCommand::builder()
                .name("glueetl")
                .script_location(script)
                .python_version("3")
                .build(),
        )
        .default_arguments("--job-language", "python")
        .set_non_overridable_arguments(Some(fixed.clone()))
        .connections(
            ConnectionsList::builder()
                .connections(&s.connection_name)
                .build(),
        )
        .execution_property(ExecutionProperty::builder().max_concurrent_runs(1).build())
        .max_retries(0)
        .timeout(s.timeout_minutes)
        .glue_version(&s.glue_version)
        .worker_type(WorkerType::from(s.worker_type.as_str()))
        .number_of_workers(s.number_of_workers)
        .build();
    (update, hash)
}

/// Creates the job, or updates it when its definition changed.
pub async fn ensure_job(
    glue: &aws_sdk_glue::Client,
    s: &GlueSettings,
    script: &str,
    fixed: &HashMap<String, String>,
) -> Result<&'static str, ExportError> {
    let (update, hash) = job_update(s, script, fixed);
    match glue.get_job().job_name(&s.job_name).send().await {
        Ok(out) => {
            let current = out.job().and_then(|j| j.description()).unwrap_or_default();
            if current.ends_with(&hash) {
                return Ok("unchanged");
            }
            glue.update_job()
                .job_name(&s.job_name)
                .job_update(update)
                .send()
                .await
                .map_err(|e| glue_err("UpdateJob", e))?;
            Ok("updated")
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_entity_not_found_exception()) =>
        {
            let u = update;
            glue.create_job()
                .name(&s.job_name)
                .set_description(u.description)
                .set_role(u.role)
                .set_command(u.command)
                .set_default_arguments(u.default_arguments)
                .set_non_overridable_arguments(u.non_overridable_arguments)
                .set_connections(u.connections)
                .set_execution_property(u.execution_property)
                .max_retries(u.max_retries)
                .set_timeout(u.timeout)
                .set_glue_version(u.glue_version)
                .set_worker_type(u.worker_type)
                .set_number_of_workers(u.number_of_workers)
                .send()
                .await
                .map_err(|e| glue_err("CreateJob", e))?;
            Ok("created")
        }
        Err(e) => Err(glue_err("GetJob", e)),
    }
}

fn in_progress(state: &JobRunState) -> bool {
    matches!(
        state,
        JobRunState::Starting | JobRunState::Running | JobRunState::Stopping | JobRunState::Waiting
    )
}

/// The id of a run of the job still in progress, if any.
pub async fn running_run(
    glue: &aws_sdk_glue::Client,
    job: &str,
) -> Result<Option<String>, ExportError> {
    let out = glue
        .get_job_runs()
        .job_name(job)
        .max_results(25)
        .send()
        .await
        .map_err(|e| glue_err("GetJobRuns", e))?;
    Ok(out
        .job_runs()
        .iter()
        .find(|r| r.job_run_state().is_some_and(in_progress))
        .and_then(|r| r.id().map(str::to_owned)))
}

/// Polls a run with growing waits (up to `poll_max`) until it ends;
/// returns the final state and Glue's error message.
pub async fn follow(
    glue: &aws_sdk_glue::Client,
    job: &str,
    run: &str,
    poll_max: Duration,
    mut on_state: impl FnMut(&JobRunState),
) -> Result<(JobRunState, Option<String>), ExportError> {
    let mut wait = POLL_MIN;
    loop {
        let out = glue
            .get_job_run()
            .job_name(job)
            .run_id(run)
            .send()
            .await
            .map_err(|e| glue_err("GetJobRun", e))?;
        let r = out
            .job_run()
            .ok_or_else(|| ExportError::Glue("GetJobRun: no run in the answer".to_owned()))?;
        let state = r.job_run_state().cloned().unwrap_or(JobRunState::Starting);
        on_state(&state);
        if !in_progress(&state) {
            return Ok((state, r.error_message().map(str::to_owned)));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(poll_max.max(POLL_MIN));
    }
}

fn to_map<const N: usize>(pairs: [(&str, String); N]) -> HashMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// The job's NonOverridableArguments: the tables (with their window and key
/// columns for this schema, and `[export] columns` allowlists), the output,
/// the environment, the format, the connection.
pub fn fixed_arguments(
    req: &Request,
    schema: &crate::airflow::Schema,
    s: &GlueSettings,
) -> HashMap<String, String> {
    let tables: Vec<serde_json::Value> = req
        .tables
        .iter()
        .map(|t| {
            let mut entry = match spec_for(t, schema) {
                Some(spec) => serde_json::json!({
                    "table": t,
                    "window_column": spec.window_column,
                    "key_column": (spec.key.len() == 1).then(|| spec.key[0].clone()),
                }),
                None => serde_json::json!({"table": t, "window_column": null, "key_column": null}),
            };
            if let Some(cols) = req.columns.get(t) {
                entry["columns"] = serde_json::json!(cols);
            }
            entry
        })
        .collect();
    to_map([
        ("--environment", req.environment.clone()),
        ("--output", req.to.trim_end_matches('/').to_owned()),
        ("--tables", serde_json::Value::Array(tables).to_string()),
        ("--format", req.format.as_str().to_owned()),
        ("--partitions", s.partitions.to_string()),
        ("--connection_name", s.connection_name.clone()),
    ])
}

/// The arguments of one run: its window and labels.
pub fn run_arguments(
    req: &Request,
    schema: &crate::airflow::Schema,
    run_id: &str,
) -> HashMap<String, String> {
    to_map([
        ("--export_date", req.window.export_date()),
        ("--window_start", iso(req.window.start)),
        ("--window_end", iso(req.window.end)),
        ("--airflow_version", schema.version_label()),
        ("--run_id", run_id.to_owned()),
    ])
}

/// One Glue-mode export.
pub async fn run(
    db: &Db,
    req: &Request,
    engine: &Engine,
    metrics: &Store,
) -> Result<Manifest, ExportError> {
    let (s, url) = engine
        .glue
        .as_ref()
        .ok_or_else(|| ExportError::Glue("not configured".to_owned()))?;
    let out = S3Url::parse(&req.to).ok_or_else(|| {
        ExportError::Glue("export.to must be s3://bucket/prefix in Glue mode".to_owned())
    })?;
    let location = s
        .script_location
        .as_deref()
        .and_then(S3Url::parse)
        .ok_or_else(|| {
            ExportError::Glue("export.glue.script_location must be s3://bucket/prefix".to_owned())
        })?;
    let (s3c, glue) = match &engine.clients {
        Some((s3c, Some(g))) => (s3c.clone(), g.clone()),
        _ => {
            let conf = s3::sdk_config(&engine.s3).await;
            (
                s3::client(&conf, &engine.s3),
                aws_sdk_glue::Client::new(&conf),
            )
        }
    };
    let schema = crate::airflow::detect(db, req.timeout).await?;
    if s.secret_id.is_none() {
        warn!(
            "Glue: the connection stores the target's password; set export.glue.secret_id to rotate it through Secrets Manager."
        );
    }
    let connection = ensure_connection(&glue, s, url).await?;
    let script = upload_script(&s3c, &location).await?;
    let fixed = fixed_arguments(req, &schema, s);
    let job = ensure_job(&glue, s, &script, &fixed).await?;
    info!(connection, job, script = %script, "Glue: connection and job ready.");
    if let Some(id) = running_run(&glue, &s.job_name).await? {
        return Err(ExportError::AlreadyRunning(id));
    }
    let run_id = super::run_id(std::time::SystemTime::now());
    let started = glue
        .start_job_run()
        .job_name(&s.job_name)
        .set_arguments(Some(run_arguments(req, &schema, &run_id)))
        .send()
        .await;
    let glue_run = match started {
        Ok(o) => o.job_run_id().unwrap_or_default().to_owned(),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_concurrent_runs_exceeded_exception()) =>
        {
            return Err(ExportError::AlreadyRunning("(another)".to_owned()));
        }
        Err(e) => return Err(glue_err("StartJobRun", e)),
    };
    info!(job = %s.job_name, glue_run = %glue_run, export_date = %req.window.export_date(), "Glue: run started.");
    let env = req.environment.clone();
    let mut last: Option<String> = None;
    let (state, message) = follow(&glue, &s.job_name, &glue_run, s.poll_max, |st| {
        let name = st.as_str().to_owned();
        if last.as_deref() != Some(name.as_str()) {
            if let Some(prev) = &last {
                metrics.set(
                    "windsock_export_glue_run_state",
                    &[("environment", &env), ("state", prev)],
                    0.0,
                );
            }
            metrics.set(
                "windsock_export_glue_run_state",
                &[("environment", &env), ("state", &name)],
                1.0,
            );
            info!(glue_run = %glue_run, state = %name, "Glue: run state.");
            last = Some(name);
        }
    })
    .await?;
    if state != JobRunState::Succeeded {
        let msg = message.unwrap_or_default();
        warn!(glue_run = %glue_run, state = %state.as_str(), error = %msg, "Glue: run did not succeed.");
        return Err(ExportError::Glue(format!(
            "run {glue_run} ended {}: {msg}",
            state.as_str()
        )));
    }
    let key = out.key(&format!(
        "{}/_manifests/export_date={}/_manifest.json",
        req.environment,
        req.window.export_date()
    ));
    let body = s3::get(&s3c, &out.bucket, &key)
        .await
        .map_err(|e| ExportError::Glue(format!("reading the manifest: {e}")))?;
    let manifest: Manifest = serde_json::from_slice(&body).map_err(|e| {
        ExportError::Glue(format!(
            "the manifest s3://{}/{key} is not valid: {e}",
            out.bucket
        ))
    })?;
    if manifest.run_id != run_id {
        return Err(ExportError::Glue(format!(
            "the manifest s3://{}/{key} is from run {}, not from this run ({run_id})",
            out.bucket, manifest.run_id
        )));
    }
    Ok(manifest)
}
