//! Checks on user-defined SQL (`[[queries]]`) before it ever runs: one
//! statement, a query (SELECT, WITH, VALUES, TABLE, SHOW), and none of the
//! functions or clauses that act outside the read-only transaction windsock
//! runs it in (session locks, signalling other backends, files, sequences,
//! `INTO`). Sleeping (`pg_sleep`, `SLEEP`) is not refused: the server-side
//! statement timeout ends it, like any slow query (tests/registry.rs).
//!
//! This is a second line of defence. The first is the session: a read-only
//! transaction, rolled back, on a connection closed afterwards
//! ([`crate::db::Db::query_isolated`]); the last is the database role,
//! which must be read-only (docs/security.md). A deny-list cannot know the
//! functions a site installed itself, so the role still matters.
//!
//! The lexer knows each dialect's strings, quoted identifiers and comments
//! (PostgreSQL dollar quotes and nested block comments, MySQL backslash
//! escapes and `#` comments), so a `;` or a function name inside a string
//! or comment is not mistaken for code.

use crate::db::Dialect;

/// Functions that reach outside the transaction, per family (all
/// dialects are checked for all, names in lower case).
const DENIED_FUNCTIONS: &[&str] = &[
    // PostgreSQL: session-level locks outlive the transaction.
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_try_advisory_xact_lock",
    "pg_try_advisory_xact_lock_shared",
    "pg_advisory_unlock",
    "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all",
    // ... signalling and administering the server ...
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_logical_emit_message",
    "pg_create_logical_replication_slot",
    "pg_create_physical_replication_slot",
    "pg_drop_replication_slot",
    "pg_export_snapshot",
    "pg_notify",
    "set_config",
    // ... files and large objects ...
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "pg_file_write",
    "lo_import",
    "lo_export",
    "lo_create",
    "lo_unlink",
    "lo_put",
    "lo_from_bytea",
    // ... sequences, and SQL in strings that would escape this check.
    "nextval",
    "setval",
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    // MySQL / MariaDB.
    "get_lock",
    "release_lock",
    "release_all_locks",
    "load_file",
    "master_pos_wait",
    "source_pos_wait",
    "wait_for_executed_gtid_set",
    "wait_until_sql_thread_after_gtids",
    // SQLite.
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
];

/// Prefixes of denied function families (`dblink_exec`, `dblink_connect`).
const DENIED_PREFIXES: &[&str] = &["dblink"];

/// Statements a query may start with.
const QUERY_STARTS: &[&str] = &["select", "with", "values", "table", "show"];

/// One lexical token that matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An identifier or keyword (quoted identifiers unquoted), lower case.
    Word(String),
    /// `;`
    Semicolon,
    /// `(`
    Open,
    /// `:=` (MySQL assignment to a session variable).
    Assign,
    /// Anything else that is code (operators, numbers, strings).
    Other,
}

/// Why a query is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// More than one statement.
    #[error("more than one statement (`;` followed by more SQL); a query is one statement")]
    Several,
    /// Not a query.
    #[error("`{0}` is not a query; start with SELECT, WITH, VALUES, TABLE or SHOW")]
    NotAQuery(String),
    /// A function that acts outside the transaction.
    #[error("calls `{0}()`, which acts outside windsock's read-only transaction")]
    Function(String),
    /// `INTO` (files, tables, variables) or `:=`.
    #[error("uses `{0}`, which writes (a file, a table or a session variable)")]
    Writes(&'static str),
    /// A string, identifier or comment that never ends.
    #[error("a string, quoted identifier or comment is not closed")]
    Unterminated,
}

/// Checks `sql` as `dialect` parses it.
pub fn check(sql: &str, dialect: Dialect) -> Result<(), Refused> {
    let tokens = lex(sql, dialect)?;
    // One statement: only `;` may follow the first `;`.
    if let Some(i) = tokens.iter().position(|t| *t == Token::Semicolon)
        && tokens[i..].iter().any(|t| *t != Token::Semicolon)
    {
        return Err(Refused::Several);
    }
    let first = tokens.iter().find(|t| **t != Token::Open);
    match first {
        Some(Token::Word(w)) if QUERY_STARTS.contains(&w.as_str()) => {}
        Some(Token::Word(w)) => return Err(Refused::NotAQuery(w.to_uppercase())),
        _ => return Err(Refused::NotAQuery(sql.trim().chars().take(20).collect())),
    }
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::Word(w) if w == "into" => return Err(Refused::Writes("INTO")),
            Token::Assign => return Err(Refused::Writes(":=")),
            Token::Word(w) if tokens.get(i + 1) == Some(&Token::Open) => {
                let denied = DENIED_FUNCTIONS.contains(&w.as_str())
                    || DENIED_PREFIXES.iter().any(|p| w.starts_with(p));
                if denied {
                    return Err(Refused::Function(w.clone()));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The tokens of `sql`, strings and comments skipped.
fn lex(sql: &str, dialect: Dialect) -> Result<Vec<Token>, Refused> {
    let c: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '-' && next == Some('-') || ch == '#' && dialect == Dialect::MySql {
            i = c[i..]
                .iter()
                .position(|&x| x == '\n')
                .map_or(c.len(), |p| i + p + 1);
        } else if ch == '/' && next == Some('*') {
            i = skip_block_comment(&c, i, dialect == Dialect::Postgres)?;
        } else if ch == '\'' {
            i = skip_quoted(&c, i, '\'', dialect == Dialect::MySql)?;
            out.push(Token::Other);
        } else if ch == '"' || ch == '`' || (ch == '[' && dialect == Dialect::Sqlite) {
            let close = if ch == '[' { ']' } else { ch };
            let end = skip_quoted(&c, i, close, false)?;
            let name: String = c[i + 1..end - 1].iter().collect();
            out.push(Token::Word(
                name.replace(&format!("{close}{close}"), &close.to_string())
                    .to_lowercase(),
            ));
            i = end;
        } else if ch == '$' && dialect == Dialect::Postgres && dollar_tag(&c, i).is_some() {
            let tag = dollar_tag(&c, i).unwrap_or_default();
            let body = i + tag.len();
            let end = find(&c, body, &tag).ok_or(Refused::Unterminated)?;
            i = end + tag.len();
            out.push(Token::Other);
        } else if ch.is_alphabetic() || ch == '_' {
            let len = c[i..]
                .iter()
                .position(|&x| !(x.is_alphanumeric() || x == '_' || x == '$'))
                .unwrap_or(c.len() - i);
            out.push(Token::Word(
                c[i..i + len].iter().collect::<String>().to_lowercase(),
            ));
            i += len;
        } else {
            out.push(match (ch, next) {
                (';', _) => Token::Semicolon,
                ('(', _) => Token::Open,
                (':', Some('=')) => Token::Assign,
                _ => Token::Other,
            });
            i += if ch == ':' && next == Some('=') { 2 } else { 1 };
        }
    }
    Ok(out)
}

/// The end (exclusive) of a quoted run starting at `start`: a doubled
/// quote is part of it, and with `backslash` a `\` escapes the next char.
fn skip_quoted(c: &[char], start: usize, close: char, backslash: bool) -> Result<usize, Refused> {
    let mut i = start + 1;
    while i < c.len() {
        if backslash && c[i] == '\\' {
            i += 2;
        } else if c[i] == close {
            if c.get(i + 1) == Some(&close) && close != ']' {
                i += 2;
            } else {
                return Ok(i + 1);
            }
        } else {
            i += 1;
        }
    }
    Err(Refused::Unterminated)
}

/// The end (exclusive) of a `/* */` comment (nested on PostgreSQL).
fn skip_block_comment(c: &[char], start: usize, nested: bool) -> Result<usize, Refused> {
    let mut depth = 0;
    let mut i = start;
    while i + 1 < c.len() {
        if c[i] == '/' && c[i + 1] == '*' && (nested || depth == 0) {
            depth += 1;
            i += 2;
        } else if c[i] == '*' && c[i + 1] == '/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return Ok(i);
            }
        } else {
            i += 1;
        }
    }
    Err(Refused::Unterminated)
}

/// `$tag$` (or `$$`) at `i`, as a string.
fn dollar_tag(c: &[char], i: usize) -> Option<String> {
    let len = c[i + 1..]
        .iter()
        .position(|&x| !(x.is_alphanumeric() || x == '_'))?;
    let first = c.get(i + 1)?;
    if c.get(i + 1 + len) != Some(&'$') || (len > 0 && first.is_ascii_digit()) {
        return None;
    }
    Some(c[i..i + len + 2].iter().collect())
}

/// The position of `needle` in `c` at or after `from`.
fn find(c: &[char], from: usize, needle: &str) -> Option<usize> {
    let n: Vec<char> = needle.chars().collect();
    (from..=c.len().saturating_sub(n.len())).find(|&i| c[i..i + n.len()] == n[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(sql: &str) -> Vec<Result<(), Refused>> {
        Dialect::ALL.iter().map(|d| check(sql, *d)).collect()
    }

    #[test]
    fn plain_queries_pass() {
        for sql in [
            "SELECT 1 AS v",
            "select count(*) as n from dag where is_paused;",
            "  WITH x AS (SELECT 1 AS v) SELECT v FROM x ;; ",
            "(SELECT 1 AS v)",
            "SELECT 'a;b' AS s, \"weird;name\" AS t -- trailing; comment\n",
            "SELECT /* pg_advisory_lock(1); */ 1 AS v",
            "SELECT dag_id AS locky FROM dag WHERE dag_id <> 'pg_advisory_lock(1)'",
            "SELECT pg_sleep(0.1), 1 AS v",
            "VALUES (1)",
        ] {
            for (d, r) in Dialect::ALL.iter().zip(all(sql)) {
                assert_eq!(r, Ok(()), "{d:?}: {sql}");
            }
        }
        // Dialect-specific quoting.
        assert_eq!(
            check("SELECT $x$ ; DROP $x$ AS v", Dialect::Postgres),
            Ok(())
        );
        assert_eq!(
            check("SELECT /* a /* b */ c; */ 1", Dialect::Postgres),
            Ok(())
        );
        assert_eq!(check("SELECT 'it\\'s; x' AS v", Dialect::MySql), Ok(()));
        assert_eq!(check("SELECT 1 # ; DELETE\n", Dialect::MySql), Ok(()));
        assert_eq!(check("SELECT [a;b] FROM t", Dialect::Sqlite), Ok(()));
    }

    #[test]
    fn attacks_are_refused() {
        for (sql, want) in [
            (
                "COMMIT; PRAGMA query_only = 0; VACUUM INTO '/tmp/x.db'; BEGIN; SELECT 1 AS v",
                Refused::Several,
            ),
            ("SELECT 1 AS v; DELETE FROM ab_user", Refused::Several),
            ("SELECT 1 AS v;\nVACUUM", Refused::Several),
            (
                "SELECT 1 AS v FROM (SELECT pg_advisory_lock(1)) t",
                Refused::Function("pg_advisory_lock".into()),
            ),
            (
                "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_stat_activity",
                Refused::Function("pg_terminate_backend".into()),
            ),
            (
                "SELECT \"PG_TRY_ADVISORY_LOCK\"(100) AS v",
                Refused::Function("pg_try_advisory_lock".into()),
            ),
            (
                "SELECT GET_LOCK('x', 1) AS v",
                Refused::Function("get_lock".into()),
            ),
            (
                "SELECT RELEASE_LOCK ('x') AS v",
                Refused::Function("release_lock".into()),
            ),
            (
                "SELECT * FROM dblink_exec('host=x', 'DROP TABLE y')",
                Refused::Function("dblink_exec".into()),
            ),
            (
                "SELECT query_to_xml('select pg_advisory_lock(1)', true, true, '')",
                Refused::Function("query_to_xml".into()),
            ),
            (
                "SELECT load_extension('/tmp/evil.so')",
                Refused::Function("load_extension".into()),
            ),
            (
                "SELECT * FROM dag INTO OUTFILE '/tmp/x'",
                Refused::Writes("INTO"),
            ),
            ("SELECT @v := 1", Refused::Writes(":=")),
            (
                "ATTACH DATABASE '/tmp/x' AS x",
                Refused::NotAQuery("ATTACH".into()),
            ),
            ("PRAGMA query_only = 0", Refused::NotAQuery("PRAGMA".into())),
            ("COMMIT", Refused::NotAQuery("COMMIT".into())),
            ("SELECT 'unterminated", Refused::Unterminated),
            ("SELECT 1 /* open", Refused::Unterminated),
        ] {
            for (d, r) in Dialect::ALL.iter().zip(all(sql)) {
                assert_eq!(r, Err(want.clone()), "{d:?}: {sql}");
            }
        }
        // A `;` hidden from one dialect's lexer is seen by the other's.
        let sql = "SELECT 'a\\'; DELETE FROM ab_user; SELECT '1' AS v";
        assert_eq!(check(sql, Dialect::Postgres), Err(Refused::Several));
        assert_eq!(
            check("SELECT $$a$$; DELETE FROM t", Dialect::Postgres),
            Err(Refused::Several)
        );
    }
}
