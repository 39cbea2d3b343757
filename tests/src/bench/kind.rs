//! The key types the benchmarks measure, named as each client names them.

use cryptoki::mechanism::Mechanism;

use super::raw::RawScheme;

#[derive(Clone, Copy)]
pub struct Kind {
    /// "RSA-2048", "ECDSA P-256".
    pub name: &'static str,
    /// The signature, in SSH's terms.
    pub ssh_name: &'static str,
    /// tpmd's Generate key type.
    pub tpmd_type: &'static str,
    /// tpm2_ptool addkey --algorithm.
    pub ptool_type: &'static str,
    /// SSH agent sign flags (2: rsa-sha2-256).
    pub ssh_flags: u32,
    pub rsa: bool,
}

pub const RSA: Kind = Kind {
    name: "RSA-2048",
    ssh_name: "rsa-sha2-256",
    tpmd_type: "rsa2048",
    ptool_type: "rsa2048",
    ssh_flags: 2,
    rsa: true,
};

pub const ECDSA: Kind = Kind {
    name: "ECDSA P-256",
    ssh_name: "ecdsa-sha2-nistp256",
    tpmd_type: "ecc-p256",
    ptool_type: "ecc256",
    ssh_flags: 0,
    rsa: false,
};

pub const KINDS: [Kind; 2] = [RSA, ECDSA];

impl Kind {
    /// "RSA-2048 PKCS#1 v1.5 SHA-256", "ECDSA P-256 SHA-256".
    pub fn title(self) -> String {
        if self.rsa {
            format!("{} PKCS#1 v1.5 SHA-256", self.name)
        } else {
            format!("{} SHA-256", self.name)
        }
    }

    pub fn raw_scheme(self) -> RawScheme {
        if self.rsa {
            RawScheme::RsaPkcs1
        } else {
            RawScheme::Ecdsa
        }
    }

    /// tpmd's Sign scheme.
    pub fn dbus_scheme(self) -> &'static str {
        if self.rsa {
            tpmd_api::dbus::scheme::RSA_PKCS1
        } else {
            tpmd_api::dbus::scheme::ECDSA
        }
    }

    /// C_Sign's mechanism: hashing in the module, SHA-256.
    pub fn mechanism(self) -> Mechanism<'static> {
        if self.rsa {
            Mechanism::Sha256RsaPkcs
        } else {
            Mechanism::EcdsaSha256
        }
    }
}
