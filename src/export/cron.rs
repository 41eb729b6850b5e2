//! Five-field cron expressions (minute hour day-of-month month
//! day-of-week), evaluated in UTC, for `[export] cron`.
//!
//! Each field is `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, or a
//! comma list of those. Day of week is 0-7 (0 and 7 are Sunday). As in
//! classic cron, when both day fields are restricted a day matches if
//! either does.

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minute: Vec<bool>,
    hour: Vec<bool>,
    dom: Vec<bool>,
    month: Vec<bool>,
    dow: Vec<bool>,
    dom_any: bool,
    dow_any: bool,
}

fn field(text: &str, min: u32, max: u32, name: &str) -> Result<(Vec<bool>, bool), String> {
    let mut set = vec![false; max as usize + 1];
    let any = text == "*";
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{name}: bad step in `{item}`"))?,
            ),
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = a.parse::<u32>().map_err(|_| format!("{name}: `{item}`"))?;
            let b = b.parse::<u32>().map_err(|_| format!("{name}: `{item}`"))?;
            (a, b)
        } else {
            let v = range
                .parse::<u32>()
                .map_err(|_| format!("{name}: `{item}`"))?;
            (v, v)
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{name}: `{item}` is outside {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            set[v as usize] = true;
            v += step;
        }
    }
    Ok((set, any))
}

impl Cron {
    /// Parses `m h dom mon dow`.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let f: Vec<&str> = text.split_whitespace().collect();
        let [m, h, dom, mon, dow] = f.as_slice() else {
            return Err(format!(
                "`{text}` needs 5 fields: minute hour day-of-month month day-of-week"
            ));
        };
        let (minute, _) = field(m, 0, 59, "minute")?;
        let (hour, _) = field(h, 0, 23, "hour")?;
        let (dom, dom_any) = field(dom, 1, 31, "day of month")?;
        let (month, _) = field(mon, 1, 12, "month")?;
        let (mut dow, dow_any) = field(dow, 0, 7, "day of week")?;
        if dow[7] {
            dow[0] = true;
        }
        Ok(Cron {
            minute,
            hour,
            dom,
            month,
            dow,
            dom_any,
            dow_any,
        })
    }

    /// The first matching minute strictly after `secs` (UNIX seconds, UTC);
    /// `None` if nothing matches within 5 years (`30 2 31 2 *`).
    pub fn next_after(&self, secs: i64) -> Option<i64> {
        let mut t = (secs.div_euclid(60) + 1) * 60;
        let end = t + 5 * 366 * 86_400;
        while t < end {
            let day = t.div_euclid(86_400);
            // `YYYY-MM-DD …` of this day.
            let date = crate::demo::ts((day * 86_400) as f64);
            let month: usize = date[5..7].parse().unwrap_or(0);
            let mday: usize = date[8..10].parse().unwrap_or(0);
            let wday = (day + 4).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
            let day_ok = match (self.dom_any, self.dow_any) {
                (true, true) => true,
                (true, false) => self.dow[wday],
                (false, true) => self.dom[mday],
                (false, false) => self.dom[mday] || self.dow[wday],
            };
            if !(self.month[month] && day_ok) {
                t = (day + 1) * 86_400;
                continue;
            }
            let sod = t - day * 86_400;
            let (h, m) = ((sod / 3600) as usize, (sod % 3600 / 60) as usize);
            if self.hour[h] && self.minute[m] {
                return Some(t);
            }
            t += 60;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{iso, parse_iso};

    fn next(expr: &str, after: &str) -> String {
        iso(Cron::parse(expr)
            .unwrap()
            .next_after(parse_iso(after).unwrap())
            .unwrap())
    }

    #[test]
    fn next_runs() {
        assert_eq!(
            next("30 2 * * *", "2026-11-25T01:00:00Z"),
            "2026-11-25T02:30:00Z"
        );
        assert_eq!(
            next("30 2 * * *", "2026-11-25T02:30:00Z"),
            "2026-11-26T02:30:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2026-11-25T06:07:00Z"),
            "2026-11-25T06:15:00Z"
        );
        // 2026-11-25 is a Wednesday: the next Monday is the 30th.
        assert_eq!(
            next("0 6 * * 1", "2026-11-25T00:00:00Z"),
            "2026-11-30T06:00:00Z"
        );
        assert_eq!(
            next("0 6 * * 7", "2026-11-25T00:00:00Z"),
            "2026-11-29T06:00:00Z"
        );
        assert_eq!(
            next("0 0 1 * *", "2026-11-25T00:00:00Z"),
            "2026-12-01T00:00:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "2026-11-25T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
        // Both day fields restricted: either matches (the 1st, or a Monday).
        assert_eq!(
            next("0 0 1 * 1", "2026-11-25T00:00:00Z"),
            "2026-11-30T00:00:00Z"
        );
        assert_eq!(Cron::parse("0 0 31 2 *").unwrap().next_after(0), None);
    }

    #[test]
    fn bad_expressions_are_explained() {
        for bad in [
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "*/0 * * * *",
            "5-1 * * * *",
            "a * * * *",
            "* * 0 * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
    }
}
