//! Rows real Airflow wrote (`tests/fixtures/data/<version>/sqlite.sql`,
//! from real 2.10.5 and 3.1.8 schedulers), copied into the real schema of
//! any dialect; and FAB users as real Airflow created them.

use sqlx::{Connection as _, Row as _};
use windsock::db::Dialect;

use super::{TestDb, fixtures};

/// One table of the data fixture: column names, then per row per column
/// `(is_blob, text)` where blobs are hex.
pub type TableRows = (Vec<String>, Vec<Vec<Option<(bool, String)>>>);

/// Reads `tables` from the data fixture of `version` (loaded into an
/// in-memory SQLite).
pub async fn fixture_rows(version: &str, tables: &[&str]) -> Vec<(String, TableRows)> {
    let dump =
        std::fs::read_to_string(fixtures().join(format!("data/{version}/sqlite.sql"))).unwrap();
    let mut c = sqlx::SqliteConnection::connect("sqlite::memory:")
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(dump))
        .execute(&mut c)
        .await
        .unwrap();
    let mut out = Vec::new();
    for table in tables {
        let cols: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
        )))
        .fetch_all(&mut c)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
        let select: Vec<String> = cols
            .iter()
            .map(|c| {
                format!(
                    "typeof(\"{c}\") = 'blob', \
                     CASE WHEN typeof(\"{c}\") = 'blob' THEN hex(\"{c}\") ELSE CAST(\"{c}\" AS TEXT) END"
                )
            })
            .collect();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM \"{table}\"",
            select.join(", ")
        )))
        .fetch_all(&mut c)
        .await
        .unwrap();
        let values = rows
            .iter()
            .map(|r| {
                (0..cols.len())
                    .map(|i| {
                        r.get::<Option<String>, _>(2 * i + 1)
                            .map(|v| (r.get::<bool, _>(2 * i), v))
                    })
                    .collect()
            })
            .collect();
        out.push(((*table).to_owned(), (cols, values)));
    }
    out
}

/// Column types of `table` in the test database.
async fn target_types(db: &TestDb, table: &str) -> std::collections::HashMap<String, String> {
    let sql = match db.dialect {
        Dialect::Postgres => format!(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{table}'"
        ),
        Dialect::MySql => format!(
            "SELECT CAST(column_name AS CHAR), CAST(data_type AS CHAR) FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = '{table}'"
        ),
        Dialect::Sqlite => format!("SELECT name, type FROM pragma_table_info('{table}')"),
    };
    db.text_rows(&sql)
        .await
        .into_iter()
        .map(|r| {
            let text = |i: usize| r[i].clone().unwrap_or_default().to_ascii_lowercase();
            (text(0), text(1))
        })
        .collect()
}

/// A SQL literal of a fixture value for a column of type `ty`.
fn literal(d: Dialect, ty: &str, v: &Option<(bool, String)>) -> String {
    let Some((blob, v)) = v else {
        return "NULL".to_owned();
    };
    let quoted = |s: &str| {
        let s = s.replace('\'', "''");
        if d == Dialect::MySql {
            format!("'{}'", s.replace('\\', "\\\\"))
        } else {
            format!("'{s}'")
        }
    };
    match d {
        Dialect::Postgres if ty == "boolean" => {
            (if v == "1" { "true" } else { "false" }).to_owned()
        }
        Dialect::Postgres if ty == "bytea" => format!("decode('{v}', 'hex')"),
        Dialect::Postgres if ty.starts_with("timestamp with") => format!("'{v}+00'"),
        Dialect::MySql if *blob => format!("UNHEX('{v}')"),
        Dialect::Sqlite if *blob => format!("X'{v}'"),
        _ => quoted(v),
    }
}

/// Copies `tables` of the data fixture of `version` into `db` (which has
/// the real schema of that version), foreign-key checks off while loading.
pub async fn copy_fixture(db: &TestDb, version: &str, tables: &[&str]) {
    let d = db.dialect;
    let mut script = String::from(match d {
        Dialect::Postgres => "SET session_replication_role = replica;\n",
        Dialect::MySql => "SET FOREIGN_KEY_CHECKS = 0;\n",
        Dialect::Sqlite => "",
    });
    for (table, (cols, rows)) in fixture_rows(version, tables).await {
        let types = target_types(db, &table).await;
        for r in rows {
            let vals: Vec<String> = cols
                .iter()
                .zip(&r)
                .map(|(c, v)| literal(d, types.get(c).map_or("", String::as_str), v))
                .collect();
            let qc: Vec<String> = cols
                .iter()
                .map(|c| {
                    if d == Dialect::MySql {
                        format!("`{c}`")
                    } else {
                        format!("\"{c}\"")
                    }
                })
                .collect();
            script.push_str(&format!(
                "INSERT INTO {table} ({}) VALUES ({});\n",
                qc.join(", "),
                vals.join(", ")
            ));
        }
        if d == Dialect::Postgres && types.contains_key("id") && types["id"].contains("int") {
            script.push_str(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table})) \
                 WHERE pg_get_serial_sequence('{table}', 'id') IS NOT NULL;\n\
                 SELECT setval('{table}_id_seq', (SELECT MAX(id) FROM {table})) \
                 WHERE EXISTS (SELECT 1 FROM pg_class WHERE relname = '{table}_id_seq');\n"
            ));
        }
    }
    db.exec_script(&script).await;
}

/// The database real Airflow `version` wrote on `dialect`, its FAB users
/// included.
pub async fn airflow_db(dialect: Dialect, version: &str) -> TestDb {
    TestDb::with_data(dialect, version).await
}

/// Inserts a user the way FAB does (row plus role link), for name variants
/// real Airflow was not asked to create.
pub async fn add_user(db: &TestDb, username: &str, email: &str, role: &str) {
    let d = db.dialect;
    let esc = |s: &str| s.replace('\'', "''");
    let (id, link) = match d {
        Dialect::Postgres => (
            "nextval('ab_user_id_seq'), ",
            "nextval('ab_user_role_id_seq'), ",
        ),
        _ => ("", ""),
    };
    let (idc, linkc) = match d {
        Dialect::Postgres => ("id, ", "id, "),
        _ => ("", ""),
    };
    let active = if d == Dialect::Postgres { "true" } else { "1" };
    if d == Dialect::MySql {
        // Airflow 3's FAB tables on MySQL have no AUTO_INCREMENT.
        let next = db
            .scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM ab_user")
            .await;
        let next_link = db
            .scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM ab_user_role")
            .await;
        db.exec_script(&format!(
            "INSERT INTO ab_user (id, first_name, last_name, username, email, active, created_on, changed_on) \
             VALUES ({next}, 'F', 'L', '{u}', '{e}', 1, UTC_TIMESTAMP(), UTC_TIMESTAMP());\n\
             INSERT INTO ab_user_role (id, user_id, role_id) \
             SELECT {next_link}, {next}, r.id FROM ab_role r WHERE r.name = '{r}';",
            u = esc(username),
            e = esc(email),
            r = esc(role),
        ))
        .await;
        return;
    }
    db.exec_script(&format!(
        "INSERT INTO ab_user ({idc}first_name, last_name, username, email, active, created_on, changed_on) \
         VALUES ({id}'F', 'L', '{u}', '{e}', {active}, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);\n\
         INSERT INTO ab_user_role ({linkc}user_id, role_id) \
         SELECT {link}u.id, r.id FROM ab_user u, ab_role r WHERE u.username = '{u}' AND r.name = '{r}';",
        u = esc(username),
        e = esc(email),
        r = esc(role),
    ))
    .await;
}
