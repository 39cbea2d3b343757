//! Harness pieces for the PKCS#11 module tests: a fresh tpmd with a private HOME whose
//! key directories the module reads, the built `libtpmd_pkcs11.so`, and helpers to make
//! keys with openssl and wrap them with `tpm-keyctl wrap`.
//!
//! The module reads its environment (bus address, HOME, XDG dirs) at C_Initialize and
//! is one instance per process, so in-process tests take a process-wide lock while a
//! token is loaded. Real clients (pkcs11-tool, p11tool, ...) get the same variables.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use crate::daemon::{binary, TestEnv};
use crate::tools::{ok, openssl_genkey, run};
use tpmd_simulator::Family;

static PROCESS_LOCK: Mutex<()> = Mutex::new(());

/// The built module, next to the other workspace binaries.
pub fn module_path() -> PathBuf {
    binary("libtpmd_pkcs11.so")
}

/// A key made by openssl and wrapped into the TPM.
pub struct TestKey {
    /// The TSS2 key file the module serves.
    pub tpm: PathBuf,
    /// DER SubjectPublicKeyInfo of the original key, from openssl (not from the module).
    pub spki: Vec<u8>,
    /// PEM public key, for `openssl dgst -verify`.
    pub public_pem: PathBuf,
}

pub struct Token {
    pub env: TestEnv,
    pub rt: tokio::runtime::Runtime,
    _lock: MutexGuard<'static, ()>,
}

impl Token {
    /// A fresh simulator, bus and tpmd; HOME and the XDG dirs in its temp directory;
    /// this process's environment pointed at them.
    pub fn start() -> Token {
        Self::start_with(&[])
    }

    pub fn start_with(tpmd_args: &[&str]) -> Token {
        let args: Vec<String> = tpmd_args.iter().map(|a| a.to_string()).collect();
        Self::start_on(move || async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            TestEnv::start_with(&args).await
        })
    }

    /// A token on a fresh simulator of the given family (a TPM 1.2 serves RSA keys).
    pub fn start_family(family: Family) -> Token {
        Self::start_on(move || TestEnv::start_family(family))
    }

    /// A token on the TestEnv that `start` makes (a simulator prepared by the test, say).
    pub fn start_on<F: std::future::Future<Output = TestEnv>>(start: impl FnOnce() -> F) -> Token {
        let lock = PROCESS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let env = rt.block_on(start());
        let token = Token {
            env,
            rt,
            _lock: lock,
        };
        for dir in [token.store(), token.home().join(".ssh"), token.config_dir()] {
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        for (k, v) in token.vars() {
            std::env::set_var(k, v);
        }
        std::env::remove_var("TPMD_PKCS11_KEYS");
        // The module would try a socket named here before the test's bus.
        std::env::remove_var("TPMD_SOCKET");
        token
    }

    pub fn home(&self) -> PathBuf {
        self.env.path("home")
    }

    /// The module's own store: `$XDG_DATA_HOME/tpmd/keys`.
    pub fn store(&self) -> PathBuf {
        self.home().join(".local/share/tpmd/keys")
    }

    pub fn config_dir(&self) -> PathBuf {
        self.home().join(".config")
    }

    /// The environment the module (and every client that loads it) needs.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        let home = self.home();
        vec![
            ("TPMD_BUS_ADDRESS", self.env.bus.address().to_string()),
            ("HOME", home.display().to_string()),
            (
                "XDG_DATA_HOME",
                home.join(".local/share").display().to_string(),
            ),
            ("XDG_CONFIG_HOME", self.config_dir().display().to_string()),
        ]
    }

    /// A command with the token's environment.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.envs(self.vars()).current_dir(self.env.dir.path());
        cmd
    }

    /// Loads and initializes the module through the cryptoki crate.
    pub fn load(&self) -> cryptoki::context::Pkcs11 {
        let p = cryptoki::context::Pkcs11::new(module_path()).unwrap_or_else(|e| {
            panic!(
                "load {}: {e} (cargo build -p tpmd-pkcs11)",
                module_path().display()
            )
        });
        p.initialize(cryptoki::context::CInitializeArgs::OsThreads)
            .unwrap_or_else(|e| panic!("C_Initialize: {e}"));
        p
    }

    /// Makes a key with openssl (`rsa`, `p256`, `p384`) at `dir/name` and wraps it with
    /// `tpm-keyctl wrap` to `dir/name.tpm`; `auth` sets a key auth value.
    pub fn wrap_key(&self, dir: &Path, name: &str, kind: &str, auth: Option<&str>) -> TestKey {
        self.wrap_key_with(dir, name, kind, auth, |_| {})
    }

    /// [`Token::wrap_key`], running `with_plain` on the plaintext key file before it is
    /// deleted (to sign, decrypt or make a certificate with openssl, independently of the
    /// module).
    pub fn wrap_key_with(
        &self,
        dir: &Path,
        name: &str,
        kind: &str,
        auth: Option<&str>,
        with_plain: impl FnOnce(&Path),
    ) -> TestKey {
        let plain = dir.join(name);
        match kind {
            "rsa" => openssl_genkey(&plain, "RSA", &["rsa_keygen_bits:2048"]),
            "p256" => openssl_genkey(&plain, "EC", &["ec_paramgen_curve:P-256"]),
            "p384" => openssl_genkey(&plain, "EC", &["ec_paramgen_curve:P-384"]),
            other => panic!("unknown key kind {other}"),
        }
        let plain_s = plain.display().to_string();
        let tpm = dir.join(format!("{name}.tpm"));
        let tpm_s = tpm.display().to_string();
        let auth_file = dir.join(format!("{name}.auth"));
        let auth_s = auth_file.display().to_string();
        let mut args = vec!["wrap", plain_s.as_str(), "-o", tpm_s.as_str()];
        if let Some(a) = auth {
            std::fs::write(&auth_file, a).unwrap_or_else(|e| panic!("{e}"));
            args.extend(["--auth-file", auth_s.as_str()]);
        }
        let out = self.env.keyctl(&args);
        let _ = std::fs::remove_file(&auth_file);
        ok(&out);
        assert!(tpm.exists(), "tpm-keyctl wrap wrote no {}", tpm.display());
        let spki = run(
            "openssl",
            &["pkey", "-in", &plain_s, "-pubout", "-outform", "DER"],
        )
        .stdout;
        let public_pem = dir.join(format!("{name}.pub.pem"));
        run(
            "openssl",
            &[
                "pkey",
                "-in",
                &plain_s,
                "-pubout",
                "-out",
                &public_pem.display().to_string(),
            ],
        );
        with_plain(&plain);
        // Only the wrapped file stays: the test proves the module needs nothing else.
        std::fs::remove_file(&plain).unwrap_or_else(|e| panic!("{e}"));
        TestKey {
            tpm,
            spki,
            public_pem,
        }
    }

    pub fn restart_tpmd(&mut self) {
        self.rt.block_on(self.env.restart_tpmd(&[]));
    }

    /// SIGKILL (a crash: calls in flight get no reply), then a fresh tpmd.
    pub fn kill_and_restart_tpmd(&mut self) {
        self.env.tpmd.kill();
        let transport = self.env.sim.transport().to_string();
        let log = self.env.path("tpmd-after-kill.log");
        self.env.tpmd = self
            .rt
            .block_on(crate::daemon::TpmdProcess::start(
                &self.env.bus,
                &transport,
                &[],
                log,
            ))
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The module registered with p11-kit for this test, removed on drop. p11-kit ignores
/// per-user module files for root, so as root the file goes to /etc/pkcs11/modules
/// (`critical: no`, so other programs are not disturbed).
pub struct P11KitRegistration {
    file: PathBuf,
}

impl P11KitRegistration {
    pub fn new(token: &Token) -> P11KitRegistration {
        let dir = if nix::unistd::Uid::effective().is_root() {
            PathBuf::from("/etc/pkcs11/modules")
        } else {
            token.config_dir().join("pkcs11/modules")
        };
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let file = dir.join(format!("tpmd-test-{}.module", std::process::id()));
        std::fs::write(
            &file,
            format!("module: {}\ncritical: no\n", module_path().display()),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        P11KitRegistration { file }
    }
}

impl Drop for P11KitRegistration {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// The token's one slot.
pub fn slot(p: &cryptoki::context::Pkcs11) -> cryptoki::slot::Slot {
    let slots = p
        .get_slots_with_token()
        .unwrap_or_else(|e| panic!("C_GetSlotList: {e}"));
    assert_eq!(slots.len(), 1, "one slot per tpmd");
    slots[0]
}

/// The key object of `class` whose public key is `spki` (DER, from openssl).
pub fn object_with_spki(
    s: &cryptoki::session::Session,
    class: cryptoki::object::ObjectClass,
    spki: &[u8],
) -> cryptoki::object::ObjectHandle {
    use cryptoki::object::{Attribute, AttributeType};
    s.find_objects(&[Attribute::Class(class)])
        .unwrap_or_else(|e| panic!("C_FindObjects: {e}"))
        .into_iter()
        .find(|k| {
            s.get_attributes(*k, &[AttributeType::PublicKeyInfo])
                .map(|a| a.contains(&Attribute::PublicKeyInfo(spki.to_vec())))
                .unwrap_or(false)
        })
        .unwrap_or_else(|| panic!("no {class:?} object with this public key"))
}

/// Builds `tests/interop/libp11-two-pins.c` (OpenSSL and its libp11 engine, signing with
/// two keys of different PINs in one process) into `dir`.
pub fn build_libp11_two_pins(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/libp11-two-pins.c");
    let binary = dir.join("libp11-two-pins");
    let out = Command::new("gcc")
        .arg("-Wall")
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .arg("-lcrypto")
        .output()
        .unwrap_or_else(|e| panic!("gcc: {e}"));
    assert!(
        out.status.success(),
        "building {} (needs gcc and libssl-dev): {}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    binary
}

/// A PIN for cryptoki.
pub fn pin(p: &str) -> cryptoki::types::AuthPin {
    cryptoki::types::AuthPin::new(p.into())
}

/// Signs a message in parts so that a context-specific login can come between
/// C_SignInit and the signature; checks the signature with the key's public object.
pub fn sign_with_context_pin(
    s: &cryptoki::session::Session,
    mech: &cryptoki::mechanism::Mechanism,
    k: &TestKey,
    context_pin: Option<&str>,
) -> Result<(), cryptoki::error::Error> {
    use cryptoki::object::ObjectClass;
    const MESSAGE: &[u8] = b"signed with a PIN the key may have of its own";
    let private = object_with_spki(s, ObjectClass::PRIVATE_KEY, &k.spki);
    s.sign_init(mech, private)?;
    s.sign_update(MESSAGE)?;
    if let Some(p) = context_pin {
        s.login(cryptoki::session::UserType::ContextSpecific, Some(&pin(p)))?;
    }
    let sig = s.sign_final()?;
    let public = object_with_spki(s, ObjectClass::PUBLIC_KEY, &k.spki);
    s.verify(mech, public, MESSAGE, &sig)
        .unwrap_or_else(|e| panic!("the signature does not verify: {e}"));
    Ok(())
}

/// How many wrong auth values tpmd has logged: each is a try the TPM counted.
pub fn wrong_auth_lines(token: &Token) -> usize {
    token
        .env
        .tpmd
        .log_text()
        .matches("wrong key auth value")
        .count()
}
