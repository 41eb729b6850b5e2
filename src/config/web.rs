//! `--web.config.file` / `[server] web_config_file`: TLS and basic
//! authentication for `/metrics`, in the format of the Prometheus
//! exporter-toolkit (`web-config.yml`, the file node_exporter and
//! postgres_exporter take), so one file serves every exporter of a host:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative paths: to this file's directory
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert   # or VerifyClientCertIfGiven, NoClientCert
//!   client_ca_file: clients.crt
//!   min_version: TLS12             # or TLS13
//! http_server_config:
//!   headers:
//!     Strict-Transport-Security: max-age=31536000
//! basic_auth_users:
//!   prometheus: $2y$10$...         # bcrypt, e.g. `htpasswd -nBC 10 "" | tr -d ':\n'`
//! ```
//!
//! What rustls cannot do (TLS 1.0/1.1, cipher and curve lists, client
//! certificates without verification, HTTP/2 on this listener) is refused
//! with an error rather than ignored. Basic auth covers every path but
//! `/healthz` and `/readyz`, so liveness and readiness probes need no
//! password.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::tls::{ClientAuth, TlsFiles};

/// The parsed file.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// TLS, when configured.
    pub tls: Option<TlsFiles>,
    /// User name → bcrypt hash.
    pub users: BTreeMap<String, String>,
    /// Response headers added to every answer.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tls_server_config: Option<TlsSection>,
    #[serde(default)]
    http_server_config: Option<HttpSection>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert_file: String,
    key_file: String,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<String>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    #[serde(default)]
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// The headers exporter-toolkit lets a web config set.
const HEADERS: [&str; 5] = [
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
];

/// Reads and checks the file: TLS files readable, hashes bcrypt.
pub fn load(path: &Path) -> Result<WebConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let docs = yaml_rust2::YamlLoader::load_from_str(&text)
        .map_err(|e| format!("{}: not YAML: {e}", path.display()))?;
    let json = docs.first().map_or(serde_json::Value::Null, to_json);
    let json = if json.is_null() {
        serde_json::json!({})
    } else {
        json
    };
    let file: File = serde_path_to_error::deserialize(json)
        .map_err(|e| format!("{}: {}: {}", path.display(), e.path(), e.inner()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tls = file.tls_server_config.map(|t| tls(t, dir)).transpose()?;
    let mut headers = Vec::new();
    if let Some(h) = file.http_server_config {
        if h.http2 == Some(true) {
            return Err("http_server_config.http2: windsock serves HTTP/1.1 only".into());
        }
        for (k, v) in h.headers {
            if !HEADERS.iter().any(|a| a.eq_ignore_ascii_case(&k)) {
                return Err(format!(
                    "http_server_config.headers: `{k}` is not one of {}",
                    HEADERS.join(", ")
                ));
            }
            headers.push((k, v));
        }
    }
    for (user, hash) in &file.basic_auth_users {
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(format!(
                "basic_auth_users.{user}: not a bcrypt hash ($2y$..., e.g. from htpasswd -B)"
            ));
        }
    }
    Ok(WebConfig {
        tls,
        users: file.basic_auth_users,
        headers,
    })
}

fn tls(t: TlsSection, dir: &Path) -> Result<TlsFiles, String> {
    let path = |p: &str| -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_owned()
        } else {
            dir.join(p)
        }
    };
    let client_auth = match t.client_auth_type.as_deref().unwrap_or("NoClientCert") {
        "NoClientCert" => ClientAuth::None,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::Require,
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type: `{other}` is not supported (NoClientCert, \
                 VerifyClientCertIfGiven, RequireAndVerifyClientCert: rustls verifies every \
                 client certificate it takes)"
            ));
        }
    };
    let allow_tls12 = match t.min_version.as_deref().unwrap_or("TLS12") {
        "TLS12" => true,
        "TLS13" => false,
        other => {
            return Err(format!(
                "tls_server_config.min_version: `{other}` (TLS12 or TLS13)"
            ));
        }
    };
    if let Some(max) = t.max_version.as_deref()
        && max != "TLS13"
        && !(max == "TLS12" && allow_tls12)
    {
        return Err(format!(
            "tls_server_config.max_version: `{max}` is not supported"
        ));
    }
    let files = TlsFiles {
        cert: path(&t.cert_file),
        key: path(&t.key_file),
        client_ca: t.client_ca_file.as_deref().map(path),
        client_auth,
        allow_tls12,
    };
    // Readable and consistent now, not at the first connection.
    crate::tls::acceptor(&files).map_err(|e| format!("tls_server_config: {}", e.0))?;
    Ok(files)
}

/// A YAML value as JSON (keys as strings).
fn to_json(y: &yaml_rust2::Yaml) -> serde_json::Value {
    use serde_json::Value;
    use yaml_rust2::Yaml;
    match y {
        Yaml::Real(r) => r.parse::<f64>().map_or(Value::Null, Value::from),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::from(s.clone()),
        Yaml::Boolean(b) => Value::from(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        other => format!("{other:?}"),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Yaml::Alias(_) | Yaml::Null | Yaml::BadValue => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("windsock-web-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn users_and_refusals() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let p = write(
            "ok.yml",
            &format!("basic_auth_users:\n  Prometheus: {hash}\n"),
        );
        let c = load(&p).unwrap();
        assert_eq!(
            c.users.get("Prometheus"),
            Some(&hash),
            "user names keep their case"
        );
        assert!(c.tls.is_none());
        for (bad, why) in [
            ("basic_auth_users:\n  a: plain\n", "not a bcrypt hash"),
            (
                "tls_server_config:\n  cert_file: x\n  key_file: y\n  cipher_suites: []\n",
                "cipher_suites",
            ),
            (
                "http_server_config:\n  headers:\n    Server: x\n",
                "not one of",
            ),
            ("http_server_config:\n  http2: true\n", "HTTP/1.1"),
            ("unknown: 1\n", "unknown"),
        ] {
            let err = load(&write("bad.yml", bad)).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
