//! Value tests: every diagnostic on databases real Airflow 2.10 and 3.1
//! schedulers wrote on PostgreSQL, MariaDB and SQLite
//! (tests/fixtures/data/), each exported value compared with the truth
//! computed apart from windsock (plain SQL here, or the facts the fixture
//! generator recorded), plus the empty-schema and NULL cases.

#[path = "../common/mod.rs"]
mod common;
mod harness;

mod backfills;
mod components;
mod dags;
mod database;
mod deadlines;
mod empty;
mod history;
mod parsing;
mod queues;
mod scheduling;
mod triggers;
mod waiting;
