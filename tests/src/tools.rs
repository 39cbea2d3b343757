//! Real command-line tools the tests use to make keys and check signatures.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use crate::TestEnv;

pub fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Asserts a command succeeded, printing its stderr otherwise; returns stdout.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts a command failed with exactly one line on stderr containing `needle`.
pub fn fails_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success: {stderr}"
    );
    assert!(
        stderr.contains(needle),
        "stderr does not mention {needle:?}: {stderr}"
    );
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "error is not one line: {stderr}"
    );
}

pub fn openssl_genkey(path: &Path, algorithm: &str, opts: &[&str]) {
    let p = path.to_string_lossy();
    let mut args = vec!["genpkey", "-algorithm", algorithm, "-out", &p];
    for o in opts {
        args.push("-pkeyopt");
        args.push(o);
    }
    run("openssl", &args);
}

/// Verifies `sig` over `data` with the public key in PEM `public` via openssl.
pub fn openssl_verify(
    public: &Path,
    data: &Path,
    sig: &Path,
    digest: &str,
    extra: &[&str],
) -> bool {
    let mut args = vec![
        "dgst".to_string(),
        format!("-{digest}"),
        "-verify".into(),
        public.to_string_lossy().into_owned(),
        "-signature".into(),
        sig.to_string_lossy().into_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(data.to_string_lossy().into_owned());
    Command::new("openssl")
        .args(&args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Signs a message with `tpm-keyctl sign` and the key file `key`, exports its public key to
/// `pubkey` and has openssl verify the signature.
pub fn sign_and_verify(
    env: &TestEnv,
    key: &str,
    pubkey: &str,
    digest: &str,
    extra_sign: &[&str],
    extra_verify: &[&str],
) {
    let data = env.path("message.txt");
    fs::write(&data, b"the quick brown fox").unwrap_or_else(|e| panic!("{e}"));
    let sig = env.path("message.sig");
    let mut args = vec![
        "sign",
        "-k",
        key,
        "-i",
        "message.txt",
        "-o",
        "message.sig",
        "--hash",
        digest,
    ];
    args.extend_from_slice(extra_sign);
    ok(&env.keyctl(&args));
    let pem = ok(&env.keyctl(&["pubkey", key]));
    fs::write(env.path(pubkey), pem).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        openssl_verify(&env.path(pubkey), &data, &sig, digest, extra_verify),
        "openssl rejects the signature of {key} ({digest} {extra_sign:?})"
    );
}

/// Runs a shell script of tpm2-tools commands on a simulator nobody else is connected to
/// (before tpmd starts, say), in `dir`. Transients are flushed after it, as nothing else
/// manages the simulator's three object slots.
pub fn tpm2_tools(sim: &tpmd_simulator::Simulator, dir: &Path, script: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("{script}; rc=$?; tpm2_flushcontext -t; exit $rc"))
        .current_dir(dir)
        .env("TPM2TOOLS_TCTI", sim.transport().to_string())
        .output()
        .unwrap_or_else(|e| panic!("sh: {e}"))
}

/// [`tpm2_tools`], asserting success; returns stdout.
pub fn tpm2_tools_ok(sim: &tpmd_simulator::Simulator, dir: &Path, script: &str) -> String {
    let out = tpm2_tools(sim, dir, script);
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
