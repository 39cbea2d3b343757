//! OpenSSH's own agent tests (`regress/agent*.sh` of the Debian openssh source) against
//! tpmd-ssh-agent, with the installed OpenSSH binaries, beside the same scripts against
//! OpenSSH's ssh-agent on this machine: every test ssh-agent passes here,
//! tpmd-ssh-agent must pass too, and it may skip only what ssh-agent skips.
//!
//! The source comes from `tests/openssh-regress/fetch-source.sh` (apt-get source through
//! a private sources list, cached under target/openssh-regress); if it cannot be had, the
//! test fails with that script's one line. The runs' logs stay in
//! target/openssh-regress/runs/{openssh,tpmd}/TEST/.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tpmd_tests::{binary, TestEnv};

/// Every agent test of the regress suite; those that cannot run here say so and are
/// skipped (getpeereid needs sudo to another user, ptrace a non-root user).
const TESTS: [&str; 7] = [
    "agent",
    "agent-pkcs11",
    "agent-restrict",
    "agent-subprocess",
    "agent-timeout",
    "agent-getpeereid",
    "agent-ptrace",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scripts() -> PathBuf {
    repo().join("tests/openssh-regress")
}

fn runs() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    target.join("openssh-regress/runs")
}

/// Each test's outcome: "PASS", "FAIL ..." or "SKIP ...", from run.sh's lines.
fn outcomes(out: &Output) -> BTreeMap<String, String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (verdict, rest) = line.split_once(' ')?;
            let name = rest.split(':').next()?.trim().to_string();
            ["PASS", "FAIL", "SKIP"]
                .contains(&verdict)
                .then(|| (name, line.to_string()))
        })
        .collect()
}

fn run(agent: &Path, source: &str, work: &Path, env: &[(&str, &str)]) -> std::process::Child {
    let mut command = Command::new(scripts().join("run.sh"));
    command
        .arg("--agent")
        .arg(agent)
        .arg("--source")
        .arg(source)
        .arg("--work")
        .arg(work)
        .args(TESTS)
        .env_remove("XDG_RUNTIME_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    command.spawn().expect("run.sh")
}

#[tokio::test]
async fn openssh_agent_regress_tests_pass_as_they_do_with_openssh_agent() {
    let fetched = Command::new(scripts().join("fetch-source.sh"))
        .output()
        .expect("fetch-source.sh");
    if !fetched.status.success() {
        panic!("{}", String::from_utf8_lossy(&fetched.stderr).trim());
    }
    let source = String::from_utf8_lossy(&fetched.stdout).trim().to_string();

    let env = TestEnv::start().await;
    let openssh_agent = PathBuf::from("/usr/bin/ssh-agent");
    let agent_bin = binary("tpmd-ssh-agent");
    let theirs = run(&openssh_agent, &source, &runs().join("openssh"), &[]);
    let ours = run(
        &scripts().join("tpmd-ssh-agent-shim"),
        &source,
        &runs().join("tpmd"),
        &[
            ("TPMD_BUS_ADDRESS", env.bus.address()),
            ("TPMD_SSH_AGENT_BIN", &agent_bin.to_string_lossy()),
        ],
    );
    let (theirs, ours) = (
        theirs.wait_with_output().unwrap(),
        ours.wait_with_output().unwrap(),
    );
    let (theirs, ours) = (outcomes(&theirs), outcomes(&ours));
    println!("OpenSSH ssh-agent: {theirs:#?}\ntpmd-ssh-agent: {ours:#?}");
    assert_eq!(
        theirs.len(),
        TESTS.len(),
        "run.sh did not report every test"
    );
    assert!(
        theirs.values().filter(|v| v.starts_with("PASS")).count() >= 4,
        "OpenSSH's own agent fails here, so the harness is broken: {theirs:#?}"
    );
    for (test, verdict) in &theirs {
        let mine = ours.get(test).map(String::as_str).unwrap_or("missing");
        if verdict.starts_with("PASS") {
            assert!(
                mine.starts_with("PASS"),
                "{mine}\n(OpenSSH's ssh-agent: {verdict})"
            );
        } else if mine.starts_with("SKIP") {
            assert!(
                verdict.starts_with("SKIP"),
                "{mine}, while OpenSSH's ssh-agent: {verdict}"
            );
        }
    }
}
