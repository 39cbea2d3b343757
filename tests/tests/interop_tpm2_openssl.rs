//! Key files interoperate both ways with the tpm2-openssl provider on the same TPM.
//! swtpm serves one client at a time, so tpmd is stopped while openssl uses the TPM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::process::Command;

use tpmd_tests::tools::{ok, openssl_genkey, openssl_verify, run};
use tpmd_tests::TestEnv;

fn openssl_tpm2(env: &TestEnv, args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(env.dir.path())
        .env(
            "TPM2OPENSSL_TCTI",
            format!("swtpm:host=127.0.0.1,port={}", env.sim.port()),
        )
        .output()
        .unwrap()
}

#[tokio::test]
async fn keys_wrapped_by_tpm_keyctl_sign_in_openssl_and_back() {
    let mut env = TestEnv::start().await;
    fs::write(env.path("msg"), b"interop").unwrap();
    run(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-binary",
            "-out",
            &env.path("msg.dgst").to_string_lossy(),
            &env.path("msg").to_string_lossy(),
        ],
    );

    // tpm-keyctl wraps, tpm2-openssl signs.
    for (name, alg, opt) in [
        ("rsa.pem", "RSA", "rsa_keygen_bits:2048"),
        ("ec.pem", "EC", "ec_paramgen_curve:P-256"),
    ] {
        openssl_genkey(&env.path(name), alg, &[opt]);
        ok(&env.keyctl(&["wrap", name]));
        let public = ok(&env.keyctl(&["pubkey", &format!("{name}.tpm")]));
        fs::write(env.path(&format!("{name}.pub.pem")), public).unwrap();
    }
    env.tpmd.stop();
    for name in ["rsa.pem", "ec.pem"] {
        let key = format!("{name}.tpm");
        let sig = format!("{name}.sig");
        let out = openssl_tpm2(
            &env,
            &[
                "pkeyutl",
                "-provider",
                "tpm2",
                "-provider",
                "default",
                "-propquery",
                "?provider=tpm2",
                "-sign",
                "-inkey",
                &key,
                "-pkeyopt",
                "digest:sha256",
                "-in",
                "msg.dgst",
                "-out",
                &sig,
            ],
        );
        ok(&out);
        assert!(
            openssl_verify(
                &env.path(&format!("{name}.pub.pem")),
                &env.path("msg"),
                &env.path(&sig),
                "sha256",
                &[]
            ),
            "openssl cannot verify what tpm2-openssl signed with {key}"
        );
    }

    // tpm2-openssl generates (parent 0x40000001, the ECC owner primary), tpmd signs.
    ok(&openssl_tpm2(
        &env,
        &[
            "genpkey",
            "-provider",
            "tpm2",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "bits:2048",
            "-out",
            "t-rsa.pem",
        ],
    ));
    ok(&openssl_tpm2(
        &env,
        &[
            "genpkey",
            "-provider",
            "tpm2",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "group:P-256",
            "-out",
            "t-ec.pem",
        ],
    ));
    env.restart_tpmd(&[]).await;
    for name in ["t-rsa.pem", "t-ec.pem"] {
        let sig = format!("{name}.sig");
        ok(&env.keyctl(&["sign", "-k", name, "-i", "msg", "-o", &sig]));
        let public = ok(&env.keyctl(&["pubkey", name]));
        fs::write(env.path(&format!("{name}.pub.pem")), public).unwrap();
        assert!(
            openssl_verify(
                &env.path(&format!("{name}.pub.pem")),
                &env.path("msg"),
                &env.path(&sig),
                "sha256",
                &[]
            ),
            "tpmd's signature with the tpm2-openssl key {name} does not verify"
        );
    }
}
