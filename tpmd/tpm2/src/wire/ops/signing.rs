//! TPM2_Sign and TPM2_RSA_Decrypt.

use tpmd_api::marshal::{
    put_tpm2b, put_u16, put_u32, TPM_ALG_ECDSA, TPM_ALG_NULL, TPM_ALG_OAEP, TPM_ALG_RSAES,
    TPM_ALG_RSAPSS, TPM_ALG_RSASSA,
};

use crate::wire::{cc, handle, Command, Response, WireError, TPM_ST_HASHCHECK};

/// The signature scheme of a TPM2_Sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignScheme {
    RsaSsa,
    RsaPss,
    Ecdsa,
}

impl SignScheme {
    fn alg(self) -> u16 {
        match self {
            SignScheme::RsaSsa => TPM_ALG_RSASSA,
            SignScheme::RsaPss => TPM_ALG_RSAPSS,
            SignScheme::Ecdsa => TPM_ALG_ECDSA,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    Rsa(Vec<u8>),
    Ecdsa { r: Vec<u8>, s: Vec<u8> },
}

/// TPM2_Sign of an externally computed digest (a NULL hashcheck ticket, which an
/// unrestricted key accepts).
pub fn sign(key: u32, digest: &[u8], scheme: SignScheme, hash_alg: u16) -> Command {
    let mut cmd = Command::new(cc::SIGN, &[key], 1, 0);
    put_tpm2b(&mut cmd.params, digest);
    put_u16(&mut cmd.params, scheme.alg());
    put_u16(&mut cmd.params, hash_alg);
    put_u16(&mut cmd.params, TPM_ST_HASHCHECK);
    put_u32(&mut cmd.params, handle::NULL);
    put_tpm2b(&mut cmd.params, &[]);
    cmd
}

pub fn parse_sign(response: &Response) -> Result<Signature, WireError> {
    let mut r = response.reader();
    let alg = r.read_u16("sigAlg")?;
    r.read_u16("hash")?;
    let signature = match alg {
        TPM_ALG_RSASSA | TPM_ALG_RSAPSS => Signature::Rsa(r.read_tpm2b("signature")?.to_vec()),
        TPM_ALG_ECDSA => Signature::Ecdsa {
            r: r.read_tpm2b("signatureR")?.to_vec(),
            s: r.read_tpm2b("signatureS")?.to_vec(),
        },
        _ => return Err(WireError::Layout("a signature of an unexpected algorithm")),
    };
    r.finish("Sign response")?;
    Ok(signature)
}

/// The padding TPM2_RSA_Decrypt removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecryptScheme {
    /// None: the raw RSA private operation.
    Raw,
    Pkcs1,
    Oaep {
        hash_alg: u16,
    },
}

/// TPM2_RSA_Decrypt. The label of OAEP is given with its terminating NUL, if any.
pub fn rsa_decrypt(key: u32, ciphertext: &[u8], scheme: DecryptScheme, label: &[u8]) -> Command {
    let mut cmd = Command::new(cc::RSA_DECRYPT, &[key], 1, 0);
    put_tpm2b(&mut cmd.params, ciphertext);
    match scheme {
        DecryptScheme::Raw => put_u16(&mut cmd.params, TPM_ALG_NULL),
        DecryptScheme::Pkcs1 => put_u16(&mut cmd.params, TPM_ALG_RSAES),
        DecryptScheme::Oaep { hash_alg } => {
            put_u16(&mut cmd.params, TPM_ALG_OAEP);
            put_u16(&mut cmd.params, hash_alg);
        }
    }
    put_tpm2b(&mut cmd.params, label);
    cmd
}

/// The decrypted message (the first response parameter, so a session can encrypt it).
pub fn parse_rsa_decrypt(response: &Response) -> Result<Vec<u8>, WireError> {
    let mut r = response.reader();
    let message = r.read_tpm2b("message")?.to_vec();
    r.finish("RSA_Decrypt response")?;
    Ok(message)
}
