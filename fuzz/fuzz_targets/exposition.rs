//! The exposition encoder: any label values and sample values encode to
//! text a Prometheus parser reads back — one line per sample, label values
//! quoted and escaped — in both formats.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use windsock::diagnostics::{Family, MetricSpec};
use windsock::metrics::{Exposition, Store};

/// Checks one sample line: `name{l="v",...} value`, escapes only `\\`,
/// `\"` and `\n` inside values; returns the label values.
fn sample_line(line: &str) -> Vec<String> {
    let (name, rest) = line.split_at(line.find(['{', ' ']).expect("name ends"));
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "{line:?}"
    );
    let mut values = Vec::new();
    let mut chars = rest.chars().peekable();
    if chars.peek() == Some(&'{') {
        chars.next();
        loop {
            let label: String = chars.by_ref().take_while(|c| *c != '=').collect();
            assert!(!label.is_empty(), "{line:?}");
            assert_eq!(chars.next(), Some('"'), "{line:?}");
            let mut v = String::new();
            loop {
                match chars.next().expect("value ends") {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('\\') => v.push('\\'),
                        Some('"') => v.push('"'),
                        Some('n') => v.push('\n'),
                        other => panic!("bad escape {other:?} in {line:?}"),
                    },
                    '\n' => panic!("raw newline in {line:?}"),
                    c => v.push(c),
                }
            }
            values.push(v);
            match chars.next() {
                Some(',') => {}
                Some('}') => break,
                other => panic!("after a value: {other:?} in {line:?}"),
            }
        }
    }
    let tail: String = chars.collect();
    assert!(tail.starts_with(' '), "{line:?}");
    values
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut samples = Vec::new();
    for (i, chunk) in text.split('\u{1}').take(50).enumerate() {
        let (dag, task) = chunk.split_once('\u{2}').unwrap_or((chunk, ""));
        let value =
            f64::from_bits((chunk.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64);
        samples.push((vec![dag.to_owned(), task.to_owned()], value));
    }
    let spec = Arc::new(
        MetricSpec::gauge("airflow_fuzz_things", "Fuzzed.", "v").labels(&["dag_id", "task_id"]),
    );
    let family = Family {
        label_names: Arc::from(spec.label_names()),
        spec,
        samples,
    };
    let store = Arc::new(Store::new(["e"]));
    store.publish("e", "fuzz", vec![family.clone()], 0, 0.0);
    let exposition = Exposition::new(store);
    for out in [exposition.classic(), exposition.openmetrics()] {
        let mut seen = 0;
        for line in out.lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let values = sample_line(line);
            if line.starts_with("airflow_fuzz_things") {
                seen += 1;
                // environment, dag_id, task_id: what was published.
                assert!(
                    family.samples.iter().any(|(l, _)| values.ends_with(l)),
                    "{line:?} is no published sample"
                );
            }
        }
        assert!(seen <= family.samples.len());
    }
});
