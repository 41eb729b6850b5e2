//! Parsing freshness on the fixtures' DAGs as real dag-processors and
//! schedulers parsed them: each DAG's last parse, the freshest and the
//! oldest, the parse duration where Airflow records it (3.1+), and DAG
//! bundle refreshes (3.x). Truth from plain SQL on `dag` and `dag_bundle`.

use crate::harness::{Fx, assert_near, each, family, num, settings, text};

/// The condition of a DAG that is not stale; with `stale`, of one that is.
fn live(fx: &Fx, stale: bool) -> String {
    if fx.v3() {
        format!("is_stale = {}", fx.bool(stale))
    } else {
        format!("is_active = {}", fx.bool(!stale))
    }
}

#[tokio::test]
async fn each_dags_last_parse_and_the_extremes() {
    each(&settings(), async |fx: &Fx| {
        let at = fx.at();
        let v31 = fx.version.as_str() >= "3.1";
        let rows = fx
            .rows(&format!(
                "SELECT dag_id, {}, {} FROM dag WHERE {} AND last_parsed_time IS NOT NULL",
                fx.epoch("last_parsed_time"),
                if v31 { "last_parse_duration" } else { "NULL" },
                live(fx, false),
            ))
            .await;
        assert!(rows.rows.len() >= 9, "{at}: the fixture's DAGs were parsed");
        let got = fx.run("dag_parsing").await;
        assert_eq!(
            family(&got, "airflow_dag_last_parsed_timestamp_seconds").len(),
            rows.rows.len(),
            "{at}"
        );
        let (mut newest, mut oldest) = (f64::MIN, f64::MAX);
        for r in &rows.rows {
            let (dag, parsed) = (text(&r[0]), num(&r[1]).unwrap());
            newest = newest.max(parsed);
            oldest = oldest.min(parsed);
            assert_near(
                &got,
                &format!("airflow_dag_last_parsed_timestamp_seconds{{dag_id={dag}}}"),
                parsed,
                1e-3,
                &at,
            );
            match num(&r[2]) {
                Some(d) => assert_near(
                    &got,
                    &format!("airflow_dag_last_parse_duration_seconds{{dag_id={dag}}}"),
                    d,
                    1e-9,
                    &at,
                ),
                None => assert!(
                    !got.contains_key(&format!(
                        "airflow_dag_last_parse_duration_seconds{{dag_id={dag}}}"
                    )),
                    "{at}"
                ),
            }
        }
        if v31 {
            assert!(
                !family(&got, "airflow_dag_last_parse_duration_seconds").is_empty(),
                "{at}"
            );
        }
        // Stored as timestamps; the encoder turns them into ages.
        assert_near(
            &got,
            "airflow_dag_parse_latest_age_seconds{}",
            newest,
            1e-3,
            &at,
        );
        assert_near(
            &got,
            "airflow_dag_parse_oldest_age_seconds{}",
            oldest,
            1e-3,
            &at,
        );
        assert!(
            newest > oldest,
            "{at}: the DAGs were parsed at different times"
        );

        // A DAG gone stale is no longer expected to be parsed.
        let first = text(&rows.rows[0][0]);
        let stale = live(fx, true);
        fx.db
            .exec_script(&format!("UPDATE dag SET {stale} WHERE dag_id = '{first}'"))
            .await;
        let got = fx.run("dag_parsing").await;
        assert!(
            !got.contains_key(&format!(
                "airflow_dag_last_parsed_timestamp_seconds{{dag_id={first}}}"
            )),
            "{at}"
        );
    })
    .await;
}

#[tokio::test]
async fn dag_bundles_refresh_on_airflow_3() {
    each(&settings(), async |fx: &Fx| {
        let at = fx.at();
        if !fx.v3() {
            assert!(!fx.schema.has_table("dag_bundle"), "{at}");
            return;
        }
        let got = fx.run("dag_bundles").await;
        let rows = fx
            .rows(&format!(
                "SELECT name, {} FROM dag_bundle WHERE active = {} AND last_refreshed IS NOT NULL",
                fx.epoch("last_refreshed"),
                fx.bool(true)
            ))
            .await;
        assert!(
            !rows.rows.is_empty(),
            "{at}: the dags-folder bundle was refreshed"
        );
        for r in &rows.rows {
            let key = format!(
                "airflow_dag_bundle_last_refreshed_timestamp_seconds{{bundle={}}}",
                text(&r[0])
            );
            assert_near(&got, &key, num(&r[1]).unwrap(), 1e-3, &at);
        }
        assert_eq!(
            family(&got, "airflow_dag_bundle_refresh_age_seconds").len(),
            rows.rows.len(),
            "{at}"
        );
    })
    .await;
}
