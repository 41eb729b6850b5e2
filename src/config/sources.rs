//! Where a target's URL and password come from, when not written into the
//! configuration: the environment Airflow itself reads, the way Airflow
//! resolves it, and AWS Secrets Manager.
//!
//! - `url_env = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"` (also what windsock
//!   watches when no target is configured and that variable is set, as in
//!   the pods of Airflow's Helm chart, whose `<release>-airflow-metadata`
//!   secret provides it): the variable's value; for an `AIRFLOW__...`
//!   option, else the output of the command in `<VAR>_CMD` (split like a
//!   shell and run without one, as Airflow's `run_command` does), else the
//!   secret named by `<VAR>_SECRET` in Airflow's secrets backend
//!   (`AIRFLOW__SECRETS__BACKEND`; windsock reads AWS Secrets Manager's,
//!   at `config_prefix/<name>` of `AIRFLOW__SECRETS__BACKEND_KWARGS`).
//! - `url_env = "AIRFLOW_CONN_<ID>"`: an Airflow connection, as a URI
//!   (`postgres://user:pass@host:5432/airflow`) or in its JSON form
//!   (`{"conn_type": "postgres", "host": ..., "login": ..., ...}`).
//! - `password_secret_id`: the target's password from AWS Secrets Manager
//!   (default credential chain; `AWS_ENDPOINT_URL` is honoured): the secret
//!   string, or its `password` key when it is a JSON object, such as a
//!   connection the MWAA bootstrap DAG (`deploy/mwaa/`) published.
//!
//! Nothing resolved here is ever logged.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

/// The variable through which Airflow (and its Helm chart) hands out the
/// metadata DB's connection.
pub const SQL_ALCHEMY_CONN: &str = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN";

/// The one secrets backend windsock can read.
pub const SECRETS_MANAGER_BACKEND: &str =
    "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend";

/// Why a URL or password could not be found. Messages never hold secrets.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The variable, its command and its secret are all unset.
    #[error("environment variable `{0}` is not set (nor {0}_CMD or {0}_SECRET)")]
    Unset(String),
    /// The `_CMD` command failed.
    #[error("{var}_CMD: {message}")]
    Command {
        /// The variable.
        var: String,
        /// What went wrong (not its output).
        message: String,
    },
    /// The secrets backend is not one windsock reads, or the lookup failed.
    #[error("{0}")]
    Secret(String),
    /// An `AIRFLOW_CONN_*` value that is not a database connection.
    #[error("{var}: {message}")]
    Connection {
        /// The variable.
        var: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The URL in environment variable `var`, resolved as Airflow would.
pub async fn env_url(var: &str) -> Result<String, SourceError> {
    let value = match std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
        Some(v) => v,
        None if var.starts_with("AIRFLOW__") => airflow_indirect(var).await?,
        None => return Err(SourceError::Unset(var.to_owned())),
    };
    if var.starts_with("AIRFLOW_CONN_") {
        connection_url(var, value.trim())
    } else {
        Ok(value.trim().to_owned())
    }
}

/// Whether `var` (or its `_CMD` / `_SECRET` form) is set.
pub fn env_url_present(var: &str) -> bool {
    [
        var.to_owned(),
        format!("{var}_CMD"),
        format!("{var}_SECRET"),
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|x| !x.trim().is_empty()))
}

/// `<VAR>_CMD`, then `<VAR>_SECRET`.
async fn airflow_indirect(var: &str) -> Result<String, SourceError> {
    if let Ok(cmd) = std::env::var(format!("{var}_CMD")) {
        return run_command(var, &cmd).await;
    }
    if let Ok(name) = std::env::var(format!("{var}_SECRET")) {
        return airflow_secret(name.trim()).await;
    }
    Err(SourceError::Unset(var.to_owned()))
}

async fn run_command(var: &str, cmd: &str) -> Result<String, SourceError> {
    let fail = |message: String| SourceError::Command {
        var: var.to_owned(),
        message,
    };
    let argv = shlex::split(cmd).filter(|a| !a.is_empty()).ok_or_else(|| {
        fail("cannot split the command like a shell (unbalanced quotes?)".to_owned())
    })?;
    let out = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| fail(format!("cannot run `{}`: {e}", argv[0])))?;
    if !out.status.success() {
        return Err(fail(format!("`{}` exited with {}", argv[0], out.status)));
    }
    let text =
        String::from_utf8(out.stdout).map_err(|_| fail("the output is not UTF-8".to_owned()))?;
    let text = text.trim().to_owned();
    if text.is_empty() {
        return Err(fail("the command printed nothing".to_owned()));
    }
    Ok(text)
}

/// A configuration value from Airflow's secrets backend, as
/// `conf.get(..., _secret)` reads it: AWS Secrets Manager's
/// `get_config(name)` looks up `config_prefix` + `sep` + `name`.
async fn airflow_secret(name: &str) -> Result<String, SourceError> {
    let backend = std::env::var("AIRFLOW__SECRETS__BACKEND").unwrap_or_default();
    if backend.trim() != SECRETS_MANAGER_BACKEND {
        return Err(SourceError::Secret(format!(
            "AIRFLOW__SECRETS__BACKEND is `{}`: windsock reads `_SECRET` options only from \
             {SECRETS_MANAGER_BACKEND}",
            backend.trim()
        )));
    }
    let kwargs: serde_json::Value = match std::env::var("AIRFLOW__SECRETS__BACKEND_KWARGS") {
        Ok(k) if !k.trim().is_empty() => serde_json::from_str(&k).map_err(|e| {
            SourceError::Secret(format!("AIRFLOW__SECRETS__BACKEND_KWARGS is not JSON: {e}"))
        })?,
        _ => serde_json::Value::Null,
    };
    let prefix = match kwargs.get("config_prefix") {
        None => Some("airflow/config"),
        Some(serde_json::Value::String(p)) => Some(p.as_str()),
        Some(_) => None,
    }
    .ok_or_else(|| {
        SourceError::Secret(
            "config_prefix is null in AIRFLOW__SECRETS__BACKEND_KWARGS: the backend reads no \
             configuration values"
                .to_owned(),
        )
    })?;
    let sep = kwargs.get("sep").and_then(|s| s.as_str()).unwrap_or("/");
    let region = kwargs.get("region_name").and_then(|r| r.as_str());
    secrets_manager(&format!("{prefix}{sep}{name}"), region).await
}

/// The password in a secret: the secret string, or its `password` key
/// when it is a JSON object (a connection).
pub async fn secret_password(id: &str) -> Result<String, SourceError> {
    let text = secrets_manager(id, None).await?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(o)) => o
            .get("password")
            .and_then(|p| p.as_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                SourceError::Secret(format!(
                    "secret `{id}` is a JSON object without a string `password`"
                ))
            }),
        _ => Ok(text.trim_end_matches(['\n', '\r']).to_owned()),
    }
}

#[cfg(feature = "aws")]
async fn secrets_manager(id: &str, region: Option<&str>) -> Result<String, SourceError> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_owned()));
    }
    let client = aws_sdk_secretsmanager::Client::new(&loader.load().await);
    let out = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| {
            SourceError::Secret(format!(
                "AWS Secrets Manager, secret `{id}`: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            ))
        })?;
    out.secret_string().map(str::to_owned).ok_or_else(|| {
        SourceError::Secret(format!(
            "secret `{id}` has no SecretString (binary secrets are not read)"
        ))
    })
}

#[cfg(not(feature = "aws"))]
async fn secrets_manager(id: &str, _region: Option<&str>) -> Result<String, SourceError> {
    Err(SourceError::Secret(format!(
        "secret `{id}`: this windsock was built without the `aws` feature"
    )))
}

/// An Airflow connection (URI or JSON form) as a database URL.
fn connection_url(var: &str, value: &str) -> Result<String, SourceError> {
    let fail = |message: &str| SourceError::Connection {
        var: var.to_owned(),
        message: message.to_owned(),
    };
    if !value.starts_with('{') {
        // The URI form is a database URL already (postgres://, mysql://).
        return Ok(value.to_owned());
    }
    let v: serde_json::Value =
        serde_json::from_str(value).map_err(|_| fail("neither a URI nor connection JSON"))?;
    let field = |k: &str| match v.get(k) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let scheme = match field("conn_type").as_deref() {
        Some("postgres" | "postgresql") => "postgresql",
        Some("mysql") => "mysql",
        Some("sqlite") => {
            let path =
                field("host").ok_or_else(|| fail("sqlite connection without host (the path)"))?;
            return Ok(format!("sqlite:///{path}"));
        }
        Some(_) => return Err(fail("conn_type is not postgres, mysql or sqlite")),
        None => return Err(fail("no conn_type")),
    };
    let enc = |s: String| utf8_percent_encode(&s, NON_ALPHANUMERIC).to_string();
    let host = field("host").ok_or_else(|| fail("no host"))?;
    let auth = match (field("login"), field("password")) {
        (Some(l), Some(p)) => format!("{}:{}@", enc(l), enc(p)),
        (Some(l), None) => format!("{}@", enc(l)),
        _ => String::new(),
    };
    let port = field("port").map(|p| format!(":{p}")).unwrap_or_default();
    let db = field("schema").unwrap_or_default();
    let query: Vec<String> = match v.get("extra") {
        Some(serde_json::Value::Object(extra)) => extra
            .iter()
            .filter_map(|(k, x)| {
                x.as_str()
                    .map(|x| format!("{}={}", enc(k.clone()), enc(x.to_owned())))
            })
            .collect(),
        _ => Vec::new(),
    };
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    Ok(format!("{scheme}://{auth}{host}{port}/{}{query}", enc(db)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_json_becomes_a_url() {
        let url = connection_url(
            "AIRFLOW_CONN_X",
            r#"{"conn_type": "postgres", "host": "db", "login": "ro", "password": "p@ss/w", "port": 5432, "schema": "airflow", "extra": {"sslmode": "require"}}"#,
        )
        .unwrap();
        assert_eq!(
            url,
            "postgresql://ro:p%40ss%2Fw@db:5432/airflow?sslmode=require"
        );
        assert_eq!(
            connection_url("AIRFLOW_CONN_X", "mysql://u:p@h/airflow").unwrap(),
            "mysql://u:p@h/airflow"
        );
        let err = connection_url("AIRFLOW_CONN_X", r#"{"conn_type": "http", "host": "h"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("conn_type"), "{err}");
    }
}
