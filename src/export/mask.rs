//! The export column policy (`export/glue/policy.json`, shared with the
//! Glue job): columns that are never read, and columns whose values are
//! masked the way Airflow's secrets masker does (values under sensitive
//! JSON keys), plus URL passwords, secret CLI flags (`--conn-uri`,
//! `--conn-password`, ...) and `variables set` values in text. Both
//! implementations run the policy file's examples in their tests.
//!
//! `[export] columns` narrows a table to an allowlist on top of this; the
//! policy's drops and masks still apply to allowed columns.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use crate::db::Cell;

/// The policy file, embedded.
pub const POLICY_JSON: &str = include_str!("../../export/glue/policy.json");

/// What happens to one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Not read at all.
    Drop,
    /// JSON: sensitive keys' values replaced, strings masked as text; not
    /// JSON: masked as text.
    MaskJson,
    /// Text rules only.
    MaskText,
}

#[derive(Debug, Deserialize)]
struct TextRule {
    pattern: String,
    replace: String,
}

/// One example of the policy file: what an action makes of an input.
#[derive(Debug, Clone, Deserialize)]
pub struct Example {
    /// The action.
    pub action: Action,
    /// Input text.
    #[serde(rename = "in")]
    pub input: String,
    /// Expected output.
    pub out: String,
}

#[derive(Debug, Deserialize)]
struct File {
    replacement: String,
    sensitive_keys: Vec<String>,
    text_rules: Vec<TextRule>,
    columns: BTreeMap<String, BTreeMap<String, Action>>,
    examples: Vec<Example>,
}

/// The compiled policy.
#[derive(Debug)]
pub struct Policy {
    replacement: String,
    sensitive: Vec<String>,
    rules: Vec<(Regex, String)>,
    columns: BTreeMap<String, BTreeMap<String, Action>>,
    /// The file's examples.
    pub examples: Vec<Example>,
}

/// The policy of this build.
pub static POLICY: LazyLock<Policy> =
    LazyLock::new(|| Policy::parse(POLICY_JSON).expect("export/glue/policy.json is valid"));

impl Policy {
    /// Parses and compiles a policy file.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let f: File = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let keys = f.sensitive_keys.join("|");
        let rules = f
            .text_rules
            .iter()
            .map(|r| {
                Regex::new(&r.pattern.replace("{keys}", &keys))
                    .map(|re| (re, r.replace.clone()))
                    .map_err(|e| format!("text rule {}: {e}", r.pattern))
            })
            .collect::<Result<_, _>>()?;
        Ok(Policy {
            replacement: f.replacement,
            sensitive: f.sensitive_keys,
            rules,
            columns: f.columns,
            examples: f.examples,
        })
    }

    /// The action on `table.column`, if any.
    pub fn action(&self, table: &str, column: &str) -> Option<Action> {
        self.columns.get(table)?.get(column).copied()
    }

    /// The action on a column of this storage: a binary column the policy
    /// masks (Airflow 2 keeps `dag_run.conf` as a pickle) cannot be masked,
    /// so it is dropped.
    pub fn action_for(&self, table: &str, column: &str, binary: bool) -> Option<Action> {
        match self.action(table, column) {
            Some(Action::MaskJson | Action::MaskText) if binary => Some(Action::Drop),
            other => other,
        }
    }

    /// Whether a JSON key names a secret (Airflow's rule: a sensitive word
    /// anywhere in the lower-cased key).
    fn sensitive_key(&self, key: &str) -> bool {
        let k = key.to_lowercase();
        self.sensitive.iter().any(|w| k.contains(w.as_str()))
    }

    /// The text rules, in order.
    pub fn mask_text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (re, template) in &self.rules {
            if re.is_match(&out) {
                out = re
                    .replace_all(&out, |c: &regex::Captures| self.expand(template, c))
                    .into_owned();
            }
        }
        out
    }

    /// A template: `{n}` is group n, `{R}` the replacement.
    fn expand(&self, template: &str, caps: &regex::Captures) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            let name = &rest[open + 1..open + close];
            match name {
                "R" => out.push_str(&self.replacement),
                n => match n.parse::<usize>() {
                    Ok(i) => out.push_str(caps.get(i).map_or("", |m| m.as_str())),
                    Err(_) => out.push_str(&rest[open..=open + close]),
                },
            }
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        out
    }

    /// JSON with sensitive keys' values replaced and strings masked; text
    /// that is not JSON is masked as text.
    pub fn mask_json(&self, text: &str) -> String {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) => self.walk(v).to_string(),
            Err(_) => self.mask_text(text),
        }
    }

    fn walk(&self, v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| {
                        let v = if self.sensitive_key(&k) {
                            Value::String(self.replacement.clone())
                        } else {
                            self.walk(v)
                        };
                        (k, v)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.into_iter().map(|x| self.walk(x)).collect()),
            Value::String(s) => Value::String(self.mask_text(&s)),
            other => other,
        }
    }

    /// Applies `action` to one cell (binary cells are left to the caller:
    /// masked columns hold text).
    pub fn apply(&self, action: Action, cell: Cell) -> Cell {
        match (action, cell) {
            (Action::MaskJson, Cell::Text(t)) => Cell::Text(self.mask_json(&t)),
            (Action::MaskText, Cell::Text(t)) => Cell::Text(self.mask_text(&t)),
            (Action::MaskJson | Action::MaskText, Cell::Bytes(b)) => {
                Cell::Text(self.mask_text(&String::from_utf8_lossy(&b)))
            }
            (_, c) => c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_files_examples_hold() {
        let p = &*POLICY;
        assert!(p.examples.len() >= 10);
        for e in &p.examples {
            let got = match e.action {
                Action::MaskJson => p.mask_json(&e.input),
                Action::MaskText => p.mask_text(&e.input),
                Action::Drop => continue,
            };
            assert_eq!(got, e.out, "{:?} of {}", e.action, e.input);
            assert!(!got.contains("PW"), "a secret survived: {got}");
        }
    }

    #[test]
    fn actions_by_table_and_column() {
        let p = &*POLICY;
        assert_eq!(
            p.action("task_instance", "executor_config"),
            Some(Action::Drop)
        );
        assert_eq!(p.action("log", "extra"), Some(Action::MaskJson));
        assert_eq!(p.action("log", "event"), None);
        assert_eq!(p.action("nope", "x"), None);
    }
}
