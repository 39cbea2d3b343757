//! The user's own signed policies, added to a key's bytes on their way to tpmd. tpmd
//! cannot read home directories, so for a key bound to an owner's signature
//! (policy starting with TPM2_PolicyAuthorize) the client appends the matching
//! `*.policy` files of [`user_policy_dir`] to the `authPolicy` it sends. The key file on
//! disk is never rewritten.

use std::borrow::Cow;
use std::path::Path;

use crate::auth_policy_file::{key_authorize, read_dir, serves, user_policy_dir};
use crate::keyfile::TpmKeyFile;

/// The bytes to send tpmd for a sign or decrypt with the key `blob`: `blob` itself, or,
/// for a key bound to signed policies, the key with the user's matching policies
/// appended to its `authPolicy`.
pub fn with_user_policies(blob: &[u8]) -> Cow<'_, [u8]> {
    match user_policy_dir() {
        Some(dir) => with_policies_from(blob, &dir),
        None => Cow::Borrowed(blob),
    }
}

/// Whether signing with `blob` may need the user's signed policies: the key's policy
/// starts with TPM2_PolicyAuthorize. A frontend works this out once when it reads a key
/// and then calls [`to_send`], so that other keys skip a parse per signature.
pub fn takes_user_policies(blob: &[u8]) -> bool {
    TpmKeyFile::parse(blob).is_ok_and(|key| key_authorize(&key.policy).is_some())
}

/// The bytes to send tpmd for `blob`, given [`takes_user_policies`] of it.
pub fn to_send(blob: &[u8], takes_user_policies: bool) -> Cow<'_, [u8]> {
    if takes_user_policies {
        with_user_policies(blob)
    } else {
        Cow::Borrowed(blob)
    }
}

/// [`with_user_policies`] with the policies of `dir`.
pub fn with_policies_from<'a>(blob: &'a [u8], dir: &Path) -> Cow<'a, [u8]> {
    let Ok(mut key) = TpmKeyFile::parse(blob) else {
        return Cow::Borrowed(blob);
    };
    let Some(authorize) = key_authorize(&key.policy) else {
        return Cow::Borrowed(blob);
    };
    let mut added = false;
    // A bad file is tpmd's to ignore as well; the error the key then meets says that no
    // signed policy matched, and `tpm-keyctl info` names the bad file.
    for file in read_dir(dir) {
        let Ok(policy) = file.policy else { continue };
        if serves(&authorize, &policy) && !key.auth_policies.contains(&policy) {
            key.auth_policies.push(policy);
            added = true;
        }
    }
    if !added {
        return Cow::Borrowed(blob);
    }
    if blob.first() == Some(&0x30) {
        Cow::Owned(key.to_der())
    } else {
        Cow::Owned(key.to_pem().into_bytes())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::auth_policy_file::to_pem;
    use crate::keyfile::{AuthPolicy, KeyFileKind};
    use crate::marshal::{put_tpm2b, put_u16, tpm2b, TPM_ALG_RSASSA, TPM_ALG_SHA256};
    use crate::policy::{
        auth_value_statement, authorize_statement, parse_selection, pcr_statement,
    };
    use crate::public::TpmPublic;

    fn owner() -> TpmPublic {
        TpmPublic::standard_ecc_srk_with_point(&[7; 32], &[8; 32])
    }

    fn key(policy_ref: &[u8]) -> TpmKeyFile {
        TpmKeyFile {
            kind: KeyFileKind::Loadable,
            empty_auth: true,
            parent: 0x8100_0001,
            public: TpmPublic::standard_ecc_srk_with_point(&[1; 32], &[2; 32]).to_tpm2b(),
            private: tpm2b(&[0x55; 100]),
            secret: None,
            policy: vec![
                authorize_statement(&owner(), policy_ref, &[]),
                auth_value_statement(),
            ],
            auth_policies: Vec::new(),
            description: None,
        }
    }

    fn signed(policy_ref: &[u8], pcr_value_digest: u8) -> AuthPolicy {
        let mut sig = Vec::new();
        put_u16(&mut sig, TPM_ALG_RSASSA);
        put_u16(&mut sig, TPM_ALG_SHA256);
        put_tpm2b(&mut sig, &[0x5A; 256]);
        AuthPolicy {
            name: Some(format!("values {pcr_value_digest}")),
            statements: vec![
                pcr_statement(
                    &parse_selection("sha256:16").unwrap(),
                    &[pcr_value_digest; 32],
                ),
                authorize_statement(&owner(), policy_ref, &sig),
            ],
        }
    }

    #[test]
    fn appends_matching_policies_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one.policy"), to_pem(&signed(b"me", 1))).unwrap();
        std::fs::write(dir.path().join("other.policy"), to_pem(&signed(b"you", 2))).unwrap();
        std::fs::write(dir.path().join("bad.policy"), "not a policy").unwrap();
        let mut file = key(b"me");
        file.auth_policies.push(signed(b"me", 9));
        let pem = file.to_pem();
        let sent = with_policies_from(pem.as_bytes(), dir.path());
        let merged = TpmKeyFile::parse(&sent).unwrap();
        assert_eq!(
            merged.auth_policies,
            vec![signed(b"me", 9), signed(b"me", 1)]
        );
        assert!(sent.starts_with(b"-----BEGIN TSS2 PRIVATE KEY-----"));
        // Sent again, the same policy is not added twice; DER stays DER.
        let der = merged.to_der();
        assert!(matches!(
            with_policies_from(&der, dir.path()),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn other_keys_pass_through_untouched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one.policy"), to_pem(&signed(b"me", 1))).unwrap();
        let mut plain = key(b"me");
        plain.policy = vec![pcr_statement(
            &parse_selection("sha256:16").unwrap(),
            &[1; 32],
        )];
        for blob in [plain.to_pem().into_bytes(), b"not a key".to_vec()] {
            assert!(matches!(
                with_policies_from(&blob, dir.path()),
                Cow::Borrowed(b) if b == blob.as_slice()
            ));
        }
        let pem = key(b"me").to_pem();
        assert!(matches!(
            with_policies_from(pem.as_bytes(), &dir.path().join("none")),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn only_keys_bound_to_signed_policies_take_the_users() {
        let mut plain = key(b"me");
        plain.policy = vec![auth_value_statement()];
        assert!(takes_user_policies(key(b"me").to_pem().as_bytes()));
        assert!(takes_user_policies(&key(b"me").to_der()));
        assert!(!takes_user_policies(plain.to_pem().as_bytes()));
        assert!(!takes_user_policies(b"not a key"));
        let blob = plain.to_pem().into_bytes();
        assert!(matches!(to_send(&blob, false), Cow::Borrowed(b) if b == blob.as_slice()));
    }
}
