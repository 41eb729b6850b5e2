//! FAB users as real Airflow created them, on every dialect.

use sqlx::{Connection as _, Row as _};
use windsock::db::Dialect;

use super::{TestDb, fixtures};

/// Rows of the FAB tables as SQL literals, from the real Airflow data
/// fixture (loaded into an in-memory SQLite).
pub async fn fab_rows(version: &str) -> Vec<(String, Vec<String>, Vec<Vec<Option<String>>>)> {
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
    for (table, cols) in [
        ("ab_role", vec!["id", "name"]),
        (
            "ab_user",
            vec![
                "id",
                "first_name",
                "last_name",
                "username",
                "password",
                "active",
                "email",
                "last_login",
                "login_count",
                "fail_login_count",
                "created_on",
                "changed_on",
            ],
        ),
        ("ab_user_role", vec!["id", "user_id", "role_id"]),
    ] {
        let sql = format!(
            "SELECT {} FROM {table} ORDER BY id",
            cols.iter()
                .map(|c| format!("CAST({c} AS TEXT)"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut c)
            .await
            .unwrap();
        let values = rows
            .iter()
            .map(|r| {
                (0..cols.len())
                    .map(|i| r.get::<Option<String>, _>(i))
                    .collect()
            })
            .collect();
        out.push((
            table.to_owned(),
            cols.iter().map(|c| (*c).to_owned()).collect(),
            values,
        ));
    }
    out
}

fn lit(dialect: Dialect, col: &str, v: &Option<String>) -> String {
    match v {
        None => "NULL".to_owned(),
        Some(v) if col == "active" && dialect == Dialect::Postgres => {
            if v == "1" {
                "true".into()
            } else {
                "false".into()
            }
        }
        Some(v) => format!("'{}'", v.replace('\'', "''")),
    }
}

/// A database with the real schema of `version` and the users real Airflow
/// created.
pub async fn airflow_db(dialect: Dialect, version: &str) -> TestDb {
    let db = TestDb::with_schema(dialect, version).await;
    let mut script = String::new();
    for (table, cols, rows) in fab_rows(version).await {
        for r in rows {
            let vals: Vec<String> = cols
                .iter()
                .zip(&r)
                .map(|(c, v)| lit(dialect, c, v))
                .collect();
            script.push_str(&format!(
                "INSERT INTO {table} ({}) VALUES ({});\n",
                cols.join(", "),
                vals.join(", ")
            ));
        }
        if dialect == Dialect::Postgres {
            script.push_str(&format!(
                "SELECT setval('{table}_id_seq', (SELECT MAX(id) FROM {table}));\n"
            ));
        }
    }
    db.exec_script(&script).await;
    db
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
