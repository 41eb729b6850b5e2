//! Cardinality control, applied to a diagnostic's families before they are
//! published: DAG include/exclude patterns, label dropping with merging, and
//! top-N per family. The global series cap is applied when encoding.

use std::collections::{BTreeMap, HashMap};

use crate::config::CardinalitySettings;
use crate::diagnostics::{Aggregate, Family};

/// The limits of one configuration.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    include: Vec<String>,
    exclude: Vec<String>,
    max_per_family: usize,
    drop_labels: BTreeMap<String, Vec<String>>,
}

/// `*` matches any run of characters, `?` one character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

impl Limits {
    /// Limits from the `[cardinality]` settings.
    pub fn new(s: &CardinalitySettings) -> Limits {
        Limits {
            include: s.include_dags.clone(),
            exclude: s.exclude_dags.clone(),
            max_per_family: s.max_series_per_family,
            drop_labels: s.drop_labels.clone(),
        }
    }

    /// Whether per-DAG series of `dag_id` are exported.
    pub fn dag_allowed(&self, dag_id: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| glob_match(p, dag_id)))
            && !self.exclude.iter().any(|p| glob_match(p, dag_id))
    }

    /// Applies the limits to one diagnostic's families.
    pub fn apply(&self, families: Vec<Family>) -> Vec<Family> {
        families.into_iter().map(|f| self.apply_one(f)).collect()
    }

    fn apply_one(&self, mut fam: Family) -> Family {
        let filtering = !self.include.is_empty() || !self.exclude.is_empty();
        if let Some(i) = fam.label_names.iter().position(|l| l == "dag_id")
            && filtering
        {
            fam.samples
                .retain(|(labels, _)| self.dag_allowed(&labels[i]));
        }
        if let Some(drop) = self.drop_labels.get(fam.spec.name.as_ref()) {
            let keep: Vec<usize> = (0..fam.label_names.len())
                .filter(|i| !drop.contains(&fam.label_names[*i]))
                .collect();
            if keep.len() != fam.label_names.len() {
                let mut merged: HashMap<Vec<String>, f64> = HashMap::new();
                let mut order = Vec::new();
                for (labels, v) in fam.samples {
                    let key: Vec<String> = keep.iter().map(|i| labels[*i].clone()).collect();
                    match merged.get_mut(&key) {
                        Some(acc) => {
                            *acc = match fam.spec.aggregate {
                                Aggregate::Sum => *acc + v,
                                Aggregate::Max => acc.max(v),
                                Aggregate::Min => acc.min(v),
                            }
                        }
                        None => {
                            order.push(key.clone());
                            merged.insert(key, v);
                        }
                    }
                }
                fam.samples = order
                    .into_iter()
                    .map(|k| {
                        let v = merged[&k];
                        (k, v)
                    })
                    .collect();
                fam.label_names = keep.iter().map(|i| fam.label_names[*i].clone()).collect();
            }
        }
        if self.max_per_family > 0 && fam.samples.len() > self.max_per_family {
            fam.samples
                .sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
            fam.samples.truncate(self.max_per_family);
        }
        fam
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::diagnostics::MetricSpec;

    #[test]
    fn globs() {
        assert!(glob_match("etl_*", "etl_orders"));
        assert!(glob_match("*_eu", "ingest_eu"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "abbc"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("etl_*", "ml_etl_x"));
        assert!(glob_match("*etl*", "ml_etl_x"));
    }

    fn fam(name: &'static str, labels: &[&str], samples: &[(&[&str], f64)]) -> Family {
        Family {
            spec: Arc::new(MetricSpec::gauge(name, "h", "v")),
            label_names: labels
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .into(),
            samples: samples
                .iter()
                .map(|(l, v)| (l.iter().map(|s| s.to_string()).collect(), *v))
                .collect(),
        }
    }

    #[test]
    fn include_exclude_drop_and_top_n() {
        let limits = Limits::new(&CardinalitySettings {
            include_dags: vec!["etl_*".into(), "ml_*".into()],
            exclude_dags: vec!["*_test".into()],
            max_series_per_family: 2,
            drop_labels: BTreeMap::from([("m".to_owned(), vec!["task_id".to_owned()])]),
            max_series: 0,
        });
        let f = fam(
            "m",
            &["dag_id", "task_id"],
            &[
                (&["etl_a", "t1"], 1.0),
                (&["etl_a", "t2"], 2.0),
                (&["etl_b", "t1"], 5.0),
                (&["etl_test", "t1"], 9.0),
                (&["other", "t1"], 7.0),
                (&["ml_x", "t1"], 0.5),
            ],
        );
        let out = limits.apply(vec![f]).remove(0);
        assert_eq!(&*out.label_names, ["dag_id"]);
        // etl_a merged to 3, etl_b 5, ml_x 0.5; top 2 kept.
        assert_eq!(
            out.samples,
            vec![
                (vec!["etl_b".to_owned()], 5.0),
                (vec!["etl_a".to_owned()], 3.0)
            ]
        );
    }
}
