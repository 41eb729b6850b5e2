//! windsock's werkzeug hash verifier against hashes real werkzeug made
//! (Werkzeug 2.2.3 of Airflow 2.10, Werkzeug 3.1.9 of Airflow 3.1;
//! regenerate with tests/airflow/make-password-vectors.py), and hashes
//! windsock makes verify the same way.

use windsock::admin::password::{Method, generate, verify};

#[derive(serde::Deserialize)]
struct Vector {
    werkzeug: String,
    method: String,
    password: String,
    hash: String,
}

#[test]
fn verifies_hashes_werkzeug_made() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata/werkzeug_vectors.json");
    let vectors: Vec<Vector> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(
        vectors
            .iter()
            .any(|v| v.werkzeug.starts_with("2.") && v.hash.starts_with("pbkdf2:sha256:260000$"))
    );
    assert!(
        vectors
            .iter()
            .any(|v| v.werkzeug.starts_with("3.") && v.hash.starts_with("scrypt:32768:8:1$"))
    );
    for v in &vectors {
        assert_eq!(
            verify(&v.hash, &v.password),
            Ok(true),
            "{} {} {:?}",
            v.werkzeug,
            v.method,
            v.password
        );
        // A wrong password, checked on the cheap variants (the defaults run
        // up to a million rounds, slow in a debug build).
        if v.method.matches(':').count() >= 2 {
            assert_eq!(
                verify(&v.hash, &format!("{}x", v.password)),
                Ok(false),
                "{}",
                v.hash
            );
        }
    }
}

/// What windsock writes has the shape FAB reads: the same method strings
/// werkzeug writes for Airflow 2 and 3.
#[test]
fn generated_hashes_have_fab_shapes() {
    let h2 = generate(Method::AIRFLOW_2, "pw");
    assert!(h2.starts_with("pbkdf2:sha256:260000$"), "{h2}");
    assert_eq!(h2.rsplit('$').next().unwrap().len(), 64);
    let h3 = generate(Method::AIRFLOW_3, "pw");
    assert!(h3.starts_with("scrypt:32768:8:1$"), "{h3}");
    assert_eq!(h3.rsplit('$').next().unwrap().len(), 128);
    assert_eq!(verify(&h3, "pw"), Ok(true));
}

/// Hashes windsock writes pass werkzeug's own check (what FAB calls at
/// login). Needs Python's werkzeug (.ci/run installs it).
#[test]
fn werkzeug_accepts_generated_hashes() {
    let cases = [
        (generate(Method::AIRFLOW_2, "new/pässword"), "new/pässword"),
        (generate(Method::AIRFLOW_3, "new/pässword"), "new/pässword"),
    ];
    for (hash, pw) in cases {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys; from werkzeug.security import check_password_hash as c; \
                 print(c(sys.argv[1], sys.argv[2]), c(sys.argv[1], sys.argv[2] + 'x'))",
                &hash,
                pw,
            ])
            .output()
            .expect("python3");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "python3 with werkzeug is required (pip install werkzeug): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(text.trim(), "True False", "{hash}");
    }
}
