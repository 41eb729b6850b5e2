//! Database URLs: the sqlx forms and the SQLAlchemy forms users copy from
//! Airflow's `sql_alchemy_conn`, and redaction of any password in them.
//!
//! Accepted schemes:
//! - PostgreSQL: `postgres`, `postgresql`, `postgresql+<driver>` (psycopg2,
//!   psycopg, asyncpg, pg8000).
//! - MySQL/MariaDB: `mysql`, `mariadb`, `mysql+<driver>` (mysqldb, pymysql,
//!   mysqlconnector), `mariadb+<driver>`.
//! - SQLite, SQLAlchemy style: `sqlite:////abs/path.db` (absolute),
//!   `sqlite:///relative.db` (relative to the working directory), and the
//!   sqlx style `sqlite://path.db` / `sqlite:path.db`.

use std::fmt;
use std::path::PathBuf;

use super::Dialect;

/// Why a URL was rejected. Never contains the password.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    /// The scheme names no supported database.
    #[error("unsupported database scheme `{0}` (expected postgresql, mysql, mariadb or sqlite)")]
    Scheme(String),
    /// The URL is not well formed.
    #[error("malformed database URL `{url}`: {reason}")]
    Malformed {
        /// The URL, redacted.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// SQLite URLs carry no password.
    #[error("a SQLite database takes no password")]
    SqlitePassword,
    /// A password in the query string would be printed wherever the URL
    /// is (logs, `check`): refused.
    #[error(
        "the URL's query string has `{0}=`: put the password in the user-info \
         (percent-encoded), password_env or password_file instead"
    )]
    PasswordInQuery(String),
}

/// Query-string keys that carry a password in libpq, sqlx or a driver.
const PASSWORD_KEYS: &[&str] = &["password", "sslpassword", "passwd", "pwd", "pass"];

/// A parsed database URL. `Display` and `Debug` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl {
    dialect: Dialect,
    kind: Kind,
}

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    /// PostgreSQL or MySQL: a sqlx-style URL without password, and the
    /// password kept apart.
    Server {
        url: url::Url,
        password: Option<String>,
    },
    /// SQLite: a file path (`:memory:` is refused: it would be empty).
    File { path: PathBuf },
}

impl DbUrl {
    /// Parses any accepted URL form.
    pub fn parse(raw: &str) -> Result<DbUrl, UrlError> {
        let raw = raw.trim();
        let (scheme, rest) = raw.split_once(':').ok_or_else(|| UrlError::Malformed {
            url: redact_url(raw),
            reason: "no scheme (expected e.g. postgresql://user@host/db)".to_owned(),
        })?;
        let base = scheme
            .split('+')
            .next()
            .unwrap_or(scheme)
            .to_ascii_lowercase();
        let dialect = match base.as_str() {
            "postgres" | "postgresql" => Dialect::Postgres,
            "mysql" | "mariadb" => Dialect::MySql,
            "sqlite" => Dialect::Sqlite,
            _ => return Err(UrlError::Scheme(scheme.to_owned())),
        };
        if dialect == Dialect::Sqlite {
            return parse_sqlite(raw, rest);
        }
        let sqlx_scheme = if dialect == Dialect::Postgres {
            "postgres"
        } else {
            "mysql"
        };
        let rest = encode_userinfo(rest);
        let mut url =
            url::Url::parse(&format!("{sqlx_scheme}:{rest}")).map_err(|e| UrlError::Malformed {
                url: redact_url(raw),
                reason: e.to_string(),
            })?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(UrlError::Malformed {
                url: redact_url(raw),
                reason: "no host".to_owned(),
            });
        }
        if let Some((key, _)) = url
            .query_pairs()
            .find(|(k, _)| PASSWORD_KEYS.contains(&k.to_ascii_lowercase().as_str()))
        {
            return Err(UrlError::PasswordInQuery(key.into_owned()));
        }
        let password = url.password().map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        });
        // The password lives apart from the URL, so no formatting of the URL
        // can ever leak it.
        let _ = url.set_password(None);
        Ok(DbUrl {
            dialect,
            kind: Kind::Server { url, password },
        })
    }

    /// Builds a SQLite URL for a file path.
    pub fn sqlite_file(path: impl Into<PathBuf>) -> DbUrl {
        DbUrl {
            dialect: Dialect::Sqlite,
            kind: Kind::File { path: path.into() },
        }
    }

    /// Which database this is.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The password, if any.
    pub fn password(&self) -> Option<&str> {
        match &self.kind {
            Kind::Server { password, .. } => password.as_deref(),
            Kind::File { .. } => None,
        }
    }

    /// Replaces the password (from `password_file` / `password_env`).
    pub fn set_password(&mut self, new: String) -> Result<(), UrlError> {
        match &mut self.kind {
            Kind::Server { password, .. } => {
                *password = Some(new);
                Ok(())
            }
            Kind::File { .. } => Err(UrlError::SqlitePassword),
        }
    }

    /// The sqlx URL without the password (PostgreSQL/MySQL).
    pub(crate) fn server_url(&self) -> Option<&url::Url> {
        match &self.kind {
            Kind::Server { url, .. } => Some(url),
            Kind::File { .. } => None,
        }
    }

    /// The SQLite file path.
    pub(crate) fn sqlite_path(&self) -> Option<&std::path::Path> {
        match &self.kind {
            Kind::File { path } => Some(path),
            Kind::Server { .. } => None,
        }
    }
}

fn parse_sqlite(raw: &str, rest: &str) -> Result<DbUrl, UrlError> {
    // Drop query parameters (`?mode=ro`, `?check_same_thread=false`): windsock
    // sets its own read-only flags.
    let rest = rest.split('?').next().unwrap_or(rest);
    let path = if let Some(p) = rest.strip_prefix("///") {
        // SQLAlchemy: three slashes then the path; a fourth makes it absolute.
        p.to_owned()
    } else if let Some(p) = rest.strip_prefix("//") {
        p.to_owned()
    } else {
        rest.to_owned()
    };
    if path.is_empty() || path == ":memory:" {
        return Err(UrlError::Malformed {
            url: redact(raw),
            reason: "a SQLite URL needs a file path (an in-memory DB has no Airflow data)"
                .to_owned(),
        });
    }
    let path = percent_encoding::percent_decode_str(&path)
        .decode_utf8_lossy()
        .into_owned();
    Ok(DbUrl::sqlite_file(path))
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Server { url, password } => {
                let mut shown = url.clone();
                if password.is_some() {
                    let _ = shown.set_password(Some("***"));
                }
                write!(f, "{shown}")
            }
            Kind::File { path } => write!(f, "sqlite:///{}", path.display()),
        }
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({self})")
    }
}

/// Replaces the password of every `scheme://user:password@` in `text` with
/// `***`, and the value of every `password=`-like query parameter. Works on
/// free text (error messages) as well as on URLs, and on strings that do
/// not parse as URLs, passwords with unencoded `/`, `?` or `@` included
/// (the user-info ends at the token's last `@`: masking too much is safe).
pub fn redact(text: &str) -> String {
    mask_query_passwords(&redact_userinfo(text))
}

fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // The user-info ends at the last `@` before whitespace (a password
        // may hold quotes, `/` or `?`); without one there is none.
        let word = tail.find(char::is_whitespace).unwrap_or(tail.len());
        match tail[..word].rfind('@') {
            Some(at) => {
                let userinfo = &tail[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// One URL as `DbUrl::parse` shows it in an error: masked between
/// `scheme://user:` and its last `@` (spaces and quotes included); without
/// an `@`, a `:` not followed by a port number starts a password whose host
/// was forgotten, masked to the end.
fn redact_url(raw: &str) -> String {
    let Some(p) = raw.find("://") else {
        return redact(raw);
    };
    let (head, tail) = raw.split_at(p + 3);
    let masked = match tail.rfind('@') {
        Some(at) => match tail[..at].find(':') {
            Some(c) => format!("{head}{}:***{}", &tail[..c], &tail[at..]),
            None => raw.to_owned(),
        },
        None => {
            let end = tail.find(['/', '?', '#']).unwrap_or(tail.len());
            match tail[..end].find(':') {
                Some(c) if !tail[c + 1..end].bytes().all(|b| b.is_ascii_digit()) => {
                    format!("{head}{}:***", &tail[..c])
                }
                _ => raw.to_owned(),
            }
        }
    };
    mask_query_passwords(&masked)
}

/// Characters of a password that would end the user-info for the `url`
/// crate (or make it invalid), encoded before it parses.
const USERINFO_UNSAFE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'/')
    .add(b':')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Reads the user-info as SQLAlchemy's `make_url` does: up to the first
/// `@`, the username without `:` or `/`, the password anything but `@`
/// (Airflow users write `postgresql://u:pa/ss@host/db` and it works there),
/// and percent-encodes what the password holds that a URL parser would
/// take for the end of the user-info. `rest` is what follows `scheme:`.
fn encode_userinfo(rest: &str) -> std::borrow::Cow<'_, str> {
    let Some(auth) = rest.strip_prefix("//") else {
        return rest.into();
    };
    let Some(at) = auth.find('@') else {
        return rest.into();
    };
    let Some((user, pw)) = auth[..at].split_once(':') else {
        return rest.into();
    };
    if user.contains(['/', '?', '#']) {
        return rest.into();
    }
    let pw = percent_encoding::utf8_percent_encode(pw, USERINFO_UNSAFE);
    format!("//{user}:{pw}{}", &auth[at..]).into()
}

/// `password=secret` (and the other [`PASSWORD_KEYS`]) → `password=***`,
/// after `?`, `&` or whitespace.
fn mask_query_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        for key in PASSWORD_KEYS {
            let n = key.len() + 1;
            let at_key = rest.len() > n
                && rest.as_bytes()[n - 1] == b'='
                && rest[..n - 1].eq_ignore_ascii_case(key)
                && (out.is_empty()
                    || out.ends_with(['?', '&', ' ', '\t', '\n', ';', ',', '"', '\'']));
            if at_key {
                out.push_str(&rest[..n]);
                out.push_str("***");
                let end = rest[n..]
                    .find(|c: char| c == '&' || c.is_whitespace() || c == '"' || c == '\'')
                    .map_or(rest.len(), |e| n + e);
                rest = &rest[end..];
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlalchemy_postgres_with_encoded_password() {
        let u =
            DbUrl::parse("postgresql+psycopg2://airflow:p%40ss%2Fw0rd@db.internal:5433/airflow")
                .unwrap();
        assert_eq!(u.dialect(), Dialect::Postgres);
        assert_eq!(u.password(), Some("p@ss/w0rd"));
        let shown = u.to_string();
        assert_eq!(shown, "postgres://airflow:***@db.internal:5433/airflow");
        assert!(!format!("{u:?}").contains("w0rd"));
    }

    #[test]
    fn passwords_with_url_characters_parse_as_sqlalchemy_reads_them() {
        let u = DbUrl::parse("postgresql+psycopg2://user:1234/x?y#z@db:5432/airflow").unwrap();
        assert_eq!(u.password(), Some("1234/x?y#z"));
        assert_eq!(u.to_string(), "postgres://user:***@db:5432/airflow");
        let u = DbUrl::parse("mysql://root:a b\"c@127.0.0.1/airflow").unwrap();
        assert_eq!(u.password(), Some("a b\"c"));
        // Already encoded stays as it was meant.
        let u = DbUrl::parse("postgres://u:p%40ss@h/db").unwrap();
        assert_eq!(u.password(), Some("p@ss"));
        // Found by the fuzz target db_url: a quote in a password whose URL
        // has no host was shown in the error.
        let e = DbUrl::parse("postgresql+psycopg2://user:\u{fffd}\u{fffd}&\"@")
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\u{fffd}'), "{e}");
        let e = DbUrl::parse("postgres://user:forgot-the-host")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("forgot"), "{e}");
        assert_eq!(
            redact("error at 'postgres://u:q\"u/o?te@h/db' here"),
            "error at 'postgres://u:***@h/db' here"
        );
    }

    #[test]
    fn sqlalchemy_mysql_drivers() {
        for scheme in ["mysql+mysqldb", "mysql+pymysql", "mariadb", "mysql"] {
            let u = DbUrl::parse(&format!(
                "{scheme}://root@127.0.0.1:3306/airflow?charset=utf8mb4"
            ))
            .unwrap();
            assert_eq!(u.dialect(), Dialect::MySql, "{scheme}");
            assert_eq!(u.password(), None);
            assert_eq!(u.server_url().unwrap().scheme(), "mysql");
        }
    }

    #[test]
    fn sqlite_forms() {
        let abs = DbUrl::parse("sqlite:////opt/airflow/airflow.db").unwrap();
        assert_eq!(
            abs.sqlite_path().unwrap(),
            std::path::Path::new("/opt/airflow/airflow.db")
        );
        let rel = DbUrl::parse("sqlite:///airflow.db").unwrap();
        assert_eq!(
            rel.sqlite_path().unwrap(),
            std::path::Path::new("airflow.db")
        );
        let sqlx = DbUrl::parse("sqlite://data/airflow.db?mode=ro").unwrap();
        assert_eq!(
            sqlx.sqlite_path().unwrap(),
            std::path::Path::new("data/airflow.db")
        );
        assert!(DbUrl::parse("sqlite://").is_err());
        assert!(DbUrl::parse("sqlite:///:memory:").is_err());
    }

    #[test]
    fn bad_urls() {
        assert_eq!(
            DbUrl::parse("oracle://u:p@h/db").unwrap_err(),
            UrlError::Scheme("oracle".into())
        );
        let e = DbUrl::parse("postgresql://user:hunter2@/db")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(DbUrl::parse("no scheme here").is_err());
    }

    #[test]
    fn redact_free_text() {
        let text = "failed: postgresql+psycopg2://airflow:s3cret@db:5432/x and mysql://root:pw@h/y";
        let r = redact(text);
        assert!(!r.contains("s3cret") && !r.contains(":pw@"), "{r}");
        assert!(
            r.contains("postgresql+psycopg2://airflow:***@db:5432/x"),
            "{r}"
        );
        assert_eq!(redact("sqlite:////a/b.db"), "sqlite:////a/b.db");
        assert_eq!(redact("no urls"), "no urls");
        // A password containing '@' still ends at the last '@' of the authority.
        assert_eq!(redact("pg://u:a@b@host/db"), "pg://u:***@host/db");
        // Unencoded '/' or '?' in the password: nothing of it is left.
        for raw in [
            "pg://u:pa/ss@host/db",
            "pg://u:pa?ss@host/db",
            "pg://u:p/a@s?s@host/db",
        ] {
            let r = redact(raw);
            assert!(!r.contains("pa") && !r.contains("ss@"), "{raw} → {r}");
            assert!(r.starts_with("pg://u:***@"), "{raw} → {r}");
        }
        assert_eq!(
            redact("postgresql://u@h/db?sslmode=require&password=hunter2&x=1 next"),
            "postgresql://u@h/db?sslmode=require&password=***&x=1 next"
        );
        assert_eq!(redact("PASSWORD=abc"), "PASSWORD=***");
        assert_eq!(redact("mypassword=abc"), "mypassword=abc");
    }

    #[test]
    fn passwords_in_the_query_string_are_refused_unprinted() {
        for raw in [
            "postgresql://u@h/db?password=hunter2",
            "mysql://u@h/db?sslmode=x&PassWord=hunter2",
            "postgresql+psycopg2://u@h/db?sslpassword=hunter2",
        ] {
            let e = DbUrl::parse(raw).unwrap_err();
            assert!(matches!(e, UrlError::PasswordInQuery(_)), "{raw}: {e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        // An unencoded `/` in the password: read as SQLAlchemy reads it.
        let u = DbUrl::parse("postgresql://u:pa/ss@h/db").unwrap();
        assert_eq!(u.password(), Some("pa/ss"));
        assert!(!u.to_string().contains("pa/ss"));
    }
}
