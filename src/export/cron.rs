//! `[export] cron`: cron expressions as Airflow users write them, evaluated
//! in UTC, parsed by the `croner` crate (POSIX/Vixie-cron semantics).
//!
//! Five fields (minute hour day-of-month month day-of-week) with ranges,
//! steps, lists, month and weekday names (`JAN`, `MON-FRI`) and day of week
//! 0-7 (0 and 7 are Sunday); the presets Airflow accepts as a schedule that
//! mean a time (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@quarterly`,
//! `@yearly`, `@annually`, plus cron's `@midnight`). As in classic cron, when
//! both day fields are restricted a day matches if either does. Seconds and
//! years are refused: Airflow's cron has neither.

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};

/// A parsed expression.
#[derive(Debug, Clone)]
pub struct Cron(croner::Cron);

/// Presets croner does not know, as Airflow defines them.
fn preset(text: &str) -> &str {
    match text.to_ascii_lowercase().as_str() {
        "@quarterly" => "0 0 1 */3 *",
        "@midnight" => "0 0 * * *",
        _ => text,
    }
}

impl Cron {
    /// Parses an expression; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let text = text.trim();
        if text.starts_with('@') && text.contains(char::is_whitespace) {
            return Err(format!("`{text}`: a preset stands alone"));
        }
        if matches!(text.to_ascii_lowercase().as_str(), "@once" | "@continuous") {
            return Err(format!(
                "`{text}` is an Airflow schedule without times; give a cron expression or [export] interval"
            ));
        }
        let fields = if text.starts_with('@') {
            5
        } else {
            text.split_whitespace().count()
        };
        if fields != 5 {
            return Err(format!(
                "`{text}` has {fields} fields; needs 5: minute hour day-of-month month day-of-week (or a preset such as @daily)"
            ));
        }
        CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(preset(text))
            .map(Cron)
            .map_err(|e| format!("`{text}`: {e}"))
    }

    /// The first matching minute strictly after `secs` (UNIX seconds, UTC);
    /// `None` if nothing matches (`0 0 31 2 *`).
    pub fn next_after(&self, secs: i64) -> Option<i64> {
        let after = DateTime::<Utc>::from_timestamp(secs, 0)?;
        self.0
            .find_next_occurrence(&after, false)
            .ok()
            .map(|t| t.timestamp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{iso, parse_iso};

    fn next(expr: &str, after: &str) -> String {
        iso(Cron::parse(expr)
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .next_after(parse_iso(after).unwrap())
            .unwrap())
    }

    #[test]
    fn next_runs() {
        for (expr, after, want) in [
            ("30 2 * * *", "2026-11-25T01:00:00Z", "2026-11-25T02:30:00Z"),
            // Strictly after: a run exactly now is not the next one.
            ("30 2 * * *", "2026-11-25T02:30:00Z", "2026-11-26T02:30:00Z"),
            (
                "*/15 * * * *",
                "2026-11-25T06:07:00Z",
                "2026-11-25T06:15:00Z",
            ),
            // 2026-11-25 is a Wednesday: the next Monday is the 30th.
            ("0 6 * * 1", "2026-11-25T00:00:00Z", "2026-11-30T06:00:00Z"),
            ("0 6 * * 7", "2026-11-25T00:00:00Z", "2026-11-29T06:00:00Z"),
            ("0 0 1 * *", "2026-11-25T00:00:00Z", "2026-12-01T00:00:00Z"),
            ("0 0 29 2 *", "2026-11-25T00:00:00Z", "2028-02-29T00:00:00Z"),
            // Both day fields restricted: either matches (the 1st, or a Monday).
            ("0 0 1 * 1", "2026-11-25T00:00:00Z", "2026-11-30T00:00:00Z"),
        ] {
            assert_eq!(next(expr, after), want, "{expr} after {after}");
        }
    }

    #[test]
    fn presets_and_names_as_airflow_users_write_them() {
        for (expr, after, want) in [
            ("@daily", "2026-11-25T01:00:00Z", "2026-11-26T00:00:00Z"),
            ("@hourly", "2026-11-25T01:10:00Z", "2026-11-25T02:00:00Z"),
            ("@weekly", "2026-11-25T00:00:00Z", "2026-11-29T00:00:00Z"),
            ("@monthly", "2026-11-25T00:00:00Z", "2026-12-01T00:00:00Z"),
            ("@quarterly", "2026-11-25T00:00:00Z", "2027-01-01T00:00:00Z"),
            ("@yearly", "2026-11-25T00:00:00Z", "2027-01-01T00:00:00Z"),
            ("@midnight", "2026-11-25T00:00:00Z", "2026-11-26T00:00:00Z"),
            (
                "0 6 * * MON-FRI",
                "2026-11-27T07:00:00Z",
                "2026-11-30T06:00:00Z",
            ),
            (
                "0 6 * * sat,sun",
                "2026-11-25T00:00:00Z",
                "2026-11-28T06:00:00Z",
            ),
            (
                "0 0 1 JAN,JUL *",
                "2026-11-25T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
        ] {
            assert_eq!(next(expr, after), want, "{expr} after {after}");
        }
        assert_eq!(Cron::parse("0 0 31 2 *").unwrap().next_after(0), None);
    }

    #[test]
    fn bad_expressions_are_explained() {
        for (bad, says) in [
            ("* * * *", "needs 5"),
            ("0 * * * * *", "needs 5"),
            ("60 * * * *", "`60 * * * *`"),
            ("* 24 * * *", "`* 24 * * *`"),
            ("*/0 * * * *", "`*/0 * * * *`"),
            ("a * * * *", "`a * * * *`"),
            ("* * 0 * *", "`* * 0 * *`"),
            ("@once", "without times"),
            ("@daily 5", "stands alone"),
            ("@fortnightly", "`@fortnightly`"),
        ] {
            let err = Cron::parse(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
