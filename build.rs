//! Build information for `windsock_build_info` and `--version`: the git
//! revision (`WINDSOCK_REVISION` when set, e.g. by a container build without
//! `.git`; else `git rev-parse`), the rustc version and the target triple.

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=WINDSOCK_REVISION");
    // A new commit moves the branch HEAD points to.
    println!("cargo:rerun-if-changed=.git/HEAD");
    if let Some(branch) = std::fs::read_to_string(".git/HEAD")
        .ok()
        .and_then(|h| h.strip_prefix("ref: ").map(|r| r.trim().to_owned()))
    {
        println!("cargo:rerun-if-changed=.git/{branch}");
    }
    let revision = std::env::var("WINDSOCK_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=WINDSOCK_REVISION={revision}");
    println!("cargo:rustc-env=WINDSOCK_RUSTC_VERSION={rustc_version}");
    println!(
        "cargo:rustc-env=WINDSOCK_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
}
