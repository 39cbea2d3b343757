//! libtpmd_pkcs11.so with the real clients: pkcs11-tool --test, p11tool through p11-kit,
//! gcr's libgck through p11-kit (as gnome-keyring and Seahorse reach tokens), openssl with
//! the libp11 engine and a pkcs11: URI, NSS (modutil, certutil) and an openvpn 2.6 client
//! whose key is in the token, renegotiating across a tpmd restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tpmd_tests::pkcs11::{module_path, P11KitRegistration, TestKey, Token};
use tpmd_tests::tools::{ok, run};

fn module() -> String {
    module_path().display().to_string()
}

fn output(cmd: &mut Command) -> String {
    ok(&cmd.stdin(Stdio::null()).output().unwrap())
}

#[test]
fn pkcs11_tool_self_test_passes() {
    let token = Token::start();
    token.wrap_key(&token.store(), "rsa", "rsa", None);
    token.wrap_key(&token.store(), "ec", "p256", None);
    let listed = output(
        token
            .command("pkcs11-tool")
            .args(["--module", &module(), "-O"]),
    );
    assert!(listed.contains("Private Key Object; RSA"), "{listed}");
    assert!(listed.contains("Private Key Object; EC"), "{listed}");
    let out = token
        .command("pkcs11-tool")
        .args(["--module", &module(), "--test", "--login", "--pin", "1234"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("No errors"), "{text}");
    assert!(text.contains("RSA-PKCS: OK"), "{text}");
}

#[test]
fn p11tool_lists_the_token_through_p11_kit() {
    let token = Token::start();
    token.wrap_key(&token.store(), "work", "rsa", None);
    token.wrap_key(&token.store(), "laptop", "p256", None);
    let _registered = P11KitRegistration::new(&token);
    let modules = output(token.command("p11-kit").arg("list-modules"));
    assert!(modules.contains("tpmd PKCS#11 module"), "{modules}");
    let tokens = output(token.command("p11tool").arg("--list-tokens"));
    let url = tokens
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("URL: "))
        .find(|u| u.contains("token=tpmd"))
        .unwrap_or_else(|| panic!("no tpmd token in p11tool --list-tokens: {tokens}"))
        .to_string();
    let all = output(token.command("p11tool").args(["--list-all", &url]));
    for want in [
        "Private key (RSA-2048)",
        "Public key (RSA-2048)",
        "Private key (EC/ECDSA-SECP256R1)",
        "Label: work",
        "Label: laptop",
    ] {
        assert!(all.contains(want), "{want} missing: {all}");
    }
    // GnuTLS signs through an RFC 7512 URI and checks the signature itself.
    for label in ["work", "laptop"] {
        let uri = format!("{url};object={label};type=private");
        let out = token
            .command("p11tool")
            .args(["--test-sign", &uri])
            .output()
            .unwrap();
        // p11tool reports the checks on stderr.
        let out = format!("{}{}", ok(&out), String::from_utf8_lossy(&out.stderr));
        assert!(
            out.contains("Verifying against public key in the token... ok"),
            "{out}"
        );
    }
}

#[test]
fn libgck_finds_the_registered_token_and_signs() {
    let token = Token::start();
    let rsa = token.wrap_key(&token.store(), "mail", "rsa", None);
    let ec = token.wrap_key(&token.store(), "chat", "p256", None);
    let _registered = P11KitRegistration::new(&token);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/gck-sign.py");
    let data = token.env.path("gck-data.txt");
    std::fs::write(&data, b"signed through gcr's libgck").unwrap();
    for (k, label) in [(&rsa, "mail"), (&ec, "chat")] {
        let sig = token.env.path(&format!("gck-{label}.sig"));
        // The system interpreter: PyGObject and the Gck typelib are Debian packages.
        let said = output(
            token
                .command("/usr/bin/python3")
                .arg(&script)
                .arg(label)
                .arg(&data)
                .arg(&sig),
        );
        assert!(said.contains("token: tpmd"), "{said}");
        verify(k, &data, &sig);
    }
}

#[test]
fn openssl_signs_with_a_pkcs11_uri() {
    let token = Token::start();
    let rsa = token.wrap_key(&token.store(), "web", "rsa", None);
    let ec = token.wrap_key(&token.store(), "code", "p384", None);
    let data = token.env.path("data.txt");
    std::fs::write(&data, b"signed through libp11").unwrap();
    for (k, label) in [(&rsa, "web"), (&ec, "code")] {
        let sig = token.env.path(&format!("{label}.sig"));
        let out = token
            .command("openssl")
            .env("PKCS11_MODULE_PATH", module())
            .args([
                "dgst", "-sha256", "-engine", "pkcs11", "-keyform", "engine", "-sign",
            ])
            .arg(format!("pkcs11:object={label};type=private"))
            .arg("-out")
            .arg(&sig)
            .arg(&data)
            .output()
            .unwrap();
        ok(&out);
        verify(k, &data, &sig);
        // The public key libp11 exports from the token is the original's.
        let exported = output(
            token
                .command("openssl")
                .env("PKCS11_MODULE_PATH", module())
                .args([
                    "pkey", "-engine", "pkcs11", "-inform", "engine", "-pubout", "-in",
                ])
                .arg(format!("pkcs11:object={label};type=public")),
        );
        assert_eq!(
            exported.trim(),
            std::fs::read_to_string(&k.public_pem).unwrap().trim()
        );
    }
}

fn verify(k: &TestKey, data: &Path, sig: &Path) {
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&k.public_pem)
        .arg("-signature")
        .arg(sig)
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "signature does not verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn nss_lists_the_token() {
    let token = Token::start();
    token.wrap_key(&token.store(), "mail", "rsa", None);
    let db = token.env.path("nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let dbarg = format!("sql:{}", db.display());
    output(
        token
            .command("certutil")
            .args(["-N", "-d", &dbarg, "--empty-password"]),
    );
    let added = token
        .command("modutil")
        .args([
            "-dbdir",
            &dbarg,
            "-add",
            "tpmd",
            "-libfile",
            &module(),
            "-force",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    ok(&added);
    let tokens = output(token.command("certutil").args(["-U", "-d", &dbarg]));
    assert!(tokens.contains("token: tpmd"), "{tokens}");
    let keys = output(
        token
            .command("certutil")
            .args(["-K", "-d", &dbarg, "-h", "all"]),
    );
    assert!(keys.contains("rsa") && keys.contains("mail"), "{keys}");
}

#[test]
fn nss_sees_the_token_through_p11_kit_proxy() {
    let token = Token::start();
    token.wrap_key(&token.store(), "browser", "p256", None);
    let _registered = P11KitRegistration::new(&token);
    let db = token.env.path("nssdb-proxy");
    std::fs::create_dir_all(&db).unwrap();
    let dbarg = format!("sql:{}", db.display());
    output(
        token
            .command("certutil")
            .args(["-N", "-d", &dbarg, "--empty-password"]),
    );
    let proxy = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so";
    let added = token
        .command("modutil")
        .args([
            "-dbdir",
            &dbarg,
            "-add",
            "p11-kit-proxy",
            "-libfile",
            proxy,
            "-force",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    ok(&added);
    let tokens = output(token.command("certutil").args(["-U", "-d", &dbarg]));
    assert!(tokens.contains("token: tpmd"), "{tokens}");
    let keys = output(
        token
            .command("certutil")
            .args(["-K", "-d", &dbarg, "-h", "all"]),
    );
    assert!(keys.contains("ec") && keys.contains("browser"), "{keys}");
}

#[test]
fn module_links_no_tpm_or_openssl_library() {
    let out = output(Command::new("ldd").arg(module_path()));
    for banned in ["tss2", "libssl", "libcrypto", "libdbus"] {
        assert!(!out.contains(banned), "links {banned}: {out}");
    }
}

#[test]
fn ssh_keygen_reads_public_keys_from_the_token() {
    let token = Token::start();
    let ssh = token.home().join(".ssh");
    let k = token.wrap_key(&ssh, "id_ecdsa", "p256", None);
    let listed = output(token.command("ssh-keygen").args(["-D", &module()]));
    let expected = output(
        token
            .command("ssh-keygen")
            .args(["-i", "-m", "PKCS8", "-f"])
            .arg(&k.public_pem),
    );
    let key_field = |line: &str| line.split_whitespace().nth(1).map(str::to_string);
    let want = expected.lines().next().and_then(key_field).unwrap();
    assert!(
        listed.lines().filter_map(key_field).any(|f| f == want),
        "{listed}"
    );
}

#[test]
fn install_script_places_module_and_registration() {
    let dest = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../p11-kit/install.sh");
    let out = Command::new("sh")
        .arg(&script)
        .arg(module_path())
        .env("DESTDIR", dest.path())
        .output()
        .unwrap();
    ok(&out);
    let registration =
        std::fs::read_to_string(dest.path().join("usr/share/p11-kit/modules/tpmd.module")).unwrap();
    assert!(registration.contains("module: libtpmd_pkcs11.so"));
    assert!(dest
        .path()
        .join("usr/lib/x86_64-linux-gnu/pkcs11/libtpmd_pkcs11.so")
        .exists());
}

// ---------------------------------------------------------------------------------------
// openvpn

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn count(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

fn wait_until(what: &str, log: &Path, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "{what}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// openvpn client and server on 127.0.0.1; the client's key (`rsa` or `p256`) is in the
/// token, its certificate beside the key file. Returns once the TLS handshake is done.
fn start_vpn(token: &Token, kind: &str) -> Vpn {
    let dir = token.env.dir.path().to_path_buf();
    let p = |n: &str| dir.join(n).display().to_string();
    // A throwaway CA, a server certificate, and a client certificate for a key that then
    // goes into the TPM; the certificate is stored beside the key file.
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.crt"),
            "-subj",
            "/CN=tpmd test CA",
            "-days",
            "2",
        ],
    );
    run(
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &p("server.key"),
            "-out",
            &p("server.csr"),
            "-subj",
            "/CN=server",
        ],
    );
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &p("server.csr"),
            "-CA",
            &p("ca.crt"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-out",
            &p("server.crt"),
            "-days",
            "2",
        ],
    );
    let client_plain = dir.join("client.pem");
    match kind {
        "rsa" => tpmd_tests::tools::openssl_genkey(&client_plain, "RSA", &["rsa_keygen_bits:2048"]),
        _ => tpmd_tests::tools::openssl_genkey(&client_plain, "EC", &["ec_paramgen_curve:P-256"]),
    }
    run(
        "openssl",
        &[
            "req",
            "-new",
            "-key",
            &p("client.pem"),
            "-out",
            &p("client.csr"),
            "-subj",
            "/CN=tpm client",
        ],
    );
    let store = token.store();
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &p("client.csr"),
            "-CA",
            &p("ca.crt"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-out",
            &store.join("vpn.crt").display().to_string(),
            "-days",
            "2",
        ],
    );
    ok(&token.env.keyctl(&[
        "wrap",
        &p("client.pem"),
        "-o",
        &store.join("vpn.tpm").display().to_string(),
    ]));
    std::fs::remove_file(&client_plain).unwrap();

    let ids = output(
        token
            .command("openvpn")
            .args(["--show-pkcs11-ids", &module()]),
    );
    let id = ids
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Serialized id:"))
        .map(str::trim)
        .next()
        .unwrap_or_else(|| panic!("openvpn sees no certificate in the token: {ids}"))
        .to_string();

    let port = free_udp_port().to_string();
    let server_log = dir.join("server.log");
    let client_log = dir.join("client.log");
    let common = [
        "--dev",
        "null",
        "--proto",
        "udp4",
        "--ifconfig-noexec",
        "--route-noexec",
        "--verb",
        "3",
    ];
    let server = Killed(
        token
            .command("openvpn")
            .args([
                "--tls-server",
                "--local",
                "127.0.0.1",
                "--lport",
                &port,
                "--ca",
                &p("ca.crt"),
                "--cert",
                &p("server.crt"),
                "--key",
                &p("server.key"),
                "--dh",
                "none",
                "--reneg-sec",
                "0",
            ])
            .args(common)
            .stdout(std::fs::File::create(&server_log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = Killed(
        token
            .command("openvpn")
            .args([
                "--tls-client",
                "--remote",
                "127.0.0.1",
                &port,
                "--nobind",
                "--ca",
                &p("ca.crt"),
                "--pkcs11-providers",
                &module(),
                "--pkcs11-id",
                &id,
                "--reneg-sec",
                "3",
            ])
            .args(common)
            .stdout(std::fs::File::create(&client_log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("no TLS handshake", &client_log, || {
        count(&client_log, "Initialization Sequence Completed") >= 1
    });
    // The server checked the client certificate, whose key is in the TPM.
    assert!(count(&server_log, "VERIFY OK: depth=0, CN=tpm client") >= 1);

    Vpn {
        _server: server,
        _client: client,
        client_log,
    }
}

struct Vpn {
    _server: Killed,
    _client: Killed,
    client_log: std::path::PathBuf,
}

impl Vpn {
    fn assert_clean(&self) {
        let log = std::fs::read_to_string(&self.client_log).unwrap();
        assert!(!log.contains("TLS Error"), "{log}");
        assert!(!log.contains("PKCS#11: Cannot"), "{log}");
        assert_eq!(
            count(&self.client_log, "Initialization Sequence Completed"),
            1,
            "{log}"
        );
    }

    /// Waits for `n` more TLS renegotiations (the client renegotiates every 3 s).
    fn renegotiates(&self, n: usize, what: &str) {
        let now = count(&self.client_log, "Control Channel: TLS");
        wait_until(what, &self.client_log, || {
            count(&self.client_log, "Control Channel: TLS") >= now + n
        });
    }
}

#[test]
fn openvpn_client_key_in_the_token_survives_tpmd_restart() {
    let mut token = Token::start();
    let vpn = start_vpn(&token, "rsa");
    token.restart_tpmd();
    vpn.renegotiates(2, "no renegotiation after the tpmd restart");
    vpn.assert_clean();
}

#[test]
fn openvpn_client_with_an_ecdsa_key_in_the_token() {
    let token = Token::start();
    let vpn = start_vpn(&token, "p256");
    vpn.renegotiates(1, "no renegotiation");
    vpn.assert_clean();
}
