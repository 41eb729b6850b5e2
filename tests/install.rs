//! The install artefacts, each checked with the real tool: the container
//! image (podman), the Kubernetes base (kubectl kustomize) and the systemd
//! unit (systemd-analyze).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (.ci/run installs it)"));
    assert!(
        out.status.success(),
        "{cmd:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// podman as this sandbox allows it: runc (crun needs cgroup v2 here) and
/// rlimits no higher than the process's own (no CAP_SYS_RESOURCE).
fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(["--runtime", "runc"]);
    c
}

const LIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

/// A Debian bookworm base image made here (no registry is reachable from
/// this machine): debootstrap, then `podman import`.
fn base_image() -> &'static str {
    const IMAGE: &str = "localhost/windsock-test-base:bookworm";
    let exists = Command::new("podman")
        .args(["image", "exists", IMAGE])
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        let root = repo().join("target/tmp/windsock-rootfs");
        if !root.join("etc/debian_version").exists() {
            let _ = std::fs::remove_dir_all(&root);
            run(Command::new("debootstrap").args([
                "--variant=minbase",
                "bookworm",
                root.to_str().unwrap(),
                "http://deb.debian.org/debian",
            ]));
        }
        let mut tar = Command::new("tar")
            .args(["-C", root.to_str().unwrap(), "-c", "."])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        run(Command::new("podman")
            .args(["import", "-", IMAGE])
            .stdin(tar.stdout.take().unwrap()));
        assert!(tar.wait().unwrap().success(), "tar of the base rootfs");
    }
    IMAGE
}

/// The Containerfile's runtime stage, exactly as written, on that base,
/// with its build stage replaced by the binary cargo built for the tests
/// (the Rust builder image cannot be pulled here either, and a release
/// build inside would take a quarter of an hour). Built and run with
/// podman: it serves /metrics of a demo database as user 10001, not root,
/// and stops cleanly on SIGTERM.
#[test]
fn container_image_runs_as_an_unprivileged_user() {
    let base = base_image();
    let ctx = repo().join(format!("target/tmp/container-{}", std::process::id()));
    std::fs::create_dir_all(ctx.join("config")).unwrap();
    std::fs::copy(
        repo().join("config/windsock.example.toml"),
        ctx.join("config/windsock.example.toml"),
    )
    .unwrap();
    run(Command::new("objcopy").args([
        "--strip-debug",
        env!("CARGO_BIN_EXE_windsock"),
        ctx.join("windsock").to_str().unwrap(),
    ]));
    let file = std::fs::read_to_string(repo().join("Containerfile")).unwrap();
    let runtime = &file[file.find("FROM ${RUNTIME_IMAGE} AS runtime").unwrap()..];
    std::fs::write(
        ctx.join("Containerfile.test"),
        format!(
            "ARG RUNTIME_IMAGE\nFROM scratch AS build\nCOPY windsock /out/windsock\n\n{runtime}"
        ),
    )
    .unwrap();
    let image = format!("localhost/windsock-test:{}", std::process::id());
    run(podman()
        .arg("build")
        .args(LIMITS)
        .args(["--build-arg", &format!("RUNTIME_IMAGE={base}")])
        .args([
            "-f",
            ctx.join("Containerfile.test").to_str().unwrap(),
            "-t",
            &image,
        ])
        .arg(&ctx));
    let user =
        run(Command::new("podman").args(["inspect", "--format", "{{.Config.User}}", &image]));
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "10001:10001");

    let db = ctx.join("demo.db");
    run(Command::new(env!("CARGO_BIN_EXE_windsock")).args([
        "demo",
        "--generate-only",
        "--path",
        db.to_str().unwrap(),
    ]));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cid = run(podman()
        .args(["run", "-d", "--network", "host"])
        .args(LIMITS)
        .args(["-v", &format!("{}:/data/demo.db:ro", db.display())])
        .args(["-e", "WINDSOCK_DB_URL=sqlite:////data/demo.db", &image])
        .args(["run", "--web.listen-address", &format!("127.0.0.1:{port}")]));
    let cid = String::from_utf8_lossy(&cid.stdout).trim().to_owned();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "the container never listened");
        std::thread::sleep(Duration::from_millis(300));
    }
    common::wait_ready(addr);
    let (status, _, metrics) = common::http_get(addr, "/metrics", None);
    assert_eq!(status, 200);
    assert!(metrics.contains("airflow_dags{environment=\"default\",state=\"active\"} 25.0"));
    let top = run(podman().args(["top", &cid, "user,args"]));
    let top = String::from_utf8_lossy(&top.stdout).into_owned();
    assert!(
        top.lines().skip(1).all(|l| l.starts_with("windsock ")),
        "{top}"
    );
    run(podman().args(["stop", "-t", "20", &cid]));
    let status =
        run(Command::new("podman").args(["inspect", "--format", "{{.State.ExitCode}}", &cid]));
    assert_eq!(
        String::from_utf8_lossy(&status.stdout).trim(),
        "0",
        "stopped cleanly"
    );
    let logs = run(Command::new("podman").args(["logs", &cid]));
    assert!(String::from_utf8_lossy(&logs.stderr).contains("Stopped."));
    let _ = Command::new("podman").args(["rm", "-f", &cid]).output();
    let _ = Command::new("podman").args(["rmi", "-f", &image]).output();
    let _ = std::fs::remove_dir_all(&ctx);
}

/// The generated PrometheusRule is current, and `kubectl kustomize` renders
/// the base: a Deployment whose probes hit /healthz and /readyz, running
/// as a non-root user with a read-only root file system, its config from
/// a generated ConfigMap and the password from a Secret, a Service, a
/// ServiceMonitor and the PrometheusRule with every alert of alerts/.
#[test]
fn kubernetes_base_renders() {
    let dir = repo().join("deploy/kubernetes");
    let fresh = std::env::temp_dir().join(format!("windsock-rule-{}.yaml", std::process::id()));
    run(Command::new(dir.join("gen-prometheusrule.sh")).arg(&fresh));
    let committed = std::fs::read_to_string(dir.join("base/prometheusrule.yaml")).unwrap();
    assert_eq!(
        std::fs::read_to_string(&fresh).unwrap(),
        committed,
        "deploy/kubernetes/base/prometheusrule.yaml is stale: run deploy/kubernetes/gen-prometheusrule.sh"
    );
    let out = run(Command::new("kubectl").args(["kustomize", dir.join("base").to_str().unwrap()]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let docs: Vec<serde_json::Value> = text.split("\n---\n").map(yaml).collect();
    let kind = |k: &str| -> &serde_json::Value {
        docs.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("no {k} in:\n{text}"))
    };
    let pod = &kind("Deployment")["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let config_map = kind("ConfigMap")["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(config_map.starts_with("windsock-config-"), "{config_map}");
    let volumes = pod["volumes"].as_array().unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["configMap"]["name"] == config_map.as_str())
    );
    assert!(
        volumes
            .iter()
            .any(|v| v["secret"]["secretName"] == "windsock-db")
    );
    let cfg = kind("ConfigMap")["data"]["windsock.toml"].as_str().unwrap();
    assert!(cfg.contains("password_file = \"/run/secrets/windsock/password\""));
    assert_eq!(kind("Service")["spec"]["ports"][0]["port"], 10112);
    assert_eq!(
        kind("ServiceMonitor")["spec"]["endpoints"][0]["port"],
        "metrics"
    );
    // Every alert of alerts/ is in the rule.
    let rule = kind("PrometheusRule");
    let in_rule: Vec<String> = rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect();
    let mut in_files = Vec::new();
    for f in std::fs::read_dir(repo().join("alerts")).unwrap() {
        let p = f.unwrap().path();
        if p.to_string_lossy().ends_with(".rules.yml") {
            let v = yaml(&std::fs::read_to_string(&p).unwrap());
            for g in v["groups"].as_array().unwrap() {
                for r in g["rules"].as_array().unwrap() {
                    if let Some(a) = r["alert"].as_str() {
                        in_files.push(a.to_owned());
                    }
                }
            }
        }
    }
    in_files.sort();
    let mut in_rule = in_rule;
    in_rule.sort();
    assert_eq!(in_rule, in_files);
    assert!(in_files.len() > 20);
    // The config in the ConfigMap is one windsock accepts.
    let tmp = std::env::temp_dir().join(format!("windsock-k8s-{}.toml", std::process::id()));
    std::fs::write(
        &tmp,
        cfg.replace("/run/secrets/windsock/password", "/dev/null"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_windsock"))
        .args(["config", "validate", "-c", tmp.to_str().unwrap()])
        .output()
        .unwrap();
    // /dev/null is an empty password file: the one error allowed here.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/dev/null is empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&tmp);
}

/// YAML (one document) as JSON, through the config crate's YAML parser.
fn yaml(text: &str) -> serde_json::Value {
    config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Yaml))
        .build()
        .unwrap()
        .try_deserialize()
        .unwrap()
}

/// The systemd unit passes `systemd-analyze verify`, and `systemd-analyze
/// security` rates it OK (exposure at most 2.0 of 10). systemd is not PID 1
/// here, so the unit is checked, not run.
#[test]
fn systemd_unit_verifies_and_is_hardened() {
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/windsock.service")).unwrap();
    let dir = std::env::temp_dir().join(format!("windsock-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path: &Path = &dir.join("windsock.service");
    // verify checks that ExecStart's binary exists.
    std::fs::write(
        path,
        unit.replace("/usr/local/bin/windsock", env!("CARGO_BIN_EXE_windsock")),
    )
    .unwrap();
    let out = run(Command::new("systemd-analyze").args(["verify", path.to_str().unwrap()]));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(Command::new("systemd-analyze").args([
        "security",
        "--offline=true",
        path.to_str().unwrap(),
    ]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("windsock.service: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(score <= 2.0, "exposure {score}:\n{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
