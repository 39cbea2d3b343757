//! Whether a connection may use a destination-constrained key: the decision OpenSSH's
//! ssh-agent makes, from the key's rules and the connection's session bindings.

use ssh_key::HashAlg;

use super::rules::{Host, Rules};
use super::{userauth, Bind};
use crate::pattern::pattern_match;
use crate::wire::KeyBlob;

/// A host certificate signed by `ca`, valid now, for `hostname` (a certificate with no
/// principals is valid for any host, as in OpenSSH).
fn host_certificate_valid(
    key: &KeyBlob,
    ca: &ssh_key::public::KeyData,
    hostname: Option<&str>,
) -> bool {
    let Some(cert) = &key.cert else {
        return false;
    };
    if &cert.ca != ca || !cert.host || !cert.valid_now() || !cert.signature_valid() {
        return false;
    }
    cert.principals.is_empty()
        || hostname.is_some_and(|host| cert.principals.iter().any(|p| pattern_match(host, p)))
}

fn host_matches(key: &KeyBlob, host: &Host) -> bool {
    host.keys.iter().any(|allowed| {
        if allowed.is_ca {
            host_certificate_valid(key, &allowed.key, host.hostname.as_deref())
        } else {
            key.cert.is_none() && key.public == allowed.key
        }
    })
}

/// Whether some hop of `rules` goes from `from` (None: this machine) to `to` (None: any
/// host) as `user` (None: any user).
fn hop_allowed(
    rules: &Rules,
    from: Option<&KeyBlob>,
    to: Option<&KeyBlob>,
    user: Option<&str>,
) -> bool {
    rules.hops.iter().any(|hop| {
        let from_ok = match from {
            None => hop.from.hostname.is_none() && hop.from.keys.is_empty(),
            Some(key) => host_matches(key, &hop.from),
        };
        let to_ok = to.is_none_or(|key| host_matches(key, &hop.to));
        let user_ok = match (&hop.to.user, user) {
            (Some(pattern), Some(user)) => pattern_match(user, pattern),
            _ => true,
        };
        from_ok && to_ok && user_ok
    })
}

fn fingerprint(key: &KeyBlob) -> String {
    key.public.fingerprint(HashAlg::Sha256).to_string()
}

/// Whether every hop the connection came through is allowed, `user` being the user a
/// signature would log in as (None when listing).
fn path_allowed(rules: &Rules, binds: &[Bind], user: Option<&str>) -> Result<(), String> {
    if rules.is_empty() || binds.is_empty() {
        return Ok(());
    }
    for (i, bind) in binds.iter().enumerate() {
        let last = i + 1 == binds.len();
        if last && bind.forwarding && user.is_some() {
            return Err("asked to sign a login on a connection bound for forwarding".into());
        }
        if !last && !bind.forwarding {
            return Err("the connection was bound for a login and then forwarded".into());
        }
        let from = i.checked_sub(1).map(|j| &binds[j].host_key);
        if !hop_allowed(
            rules,
            from,
            Some(&bind.host_key),
            if last { user } else { None },
        ) {
            return Err(format!(
                "no destination constraint allows hop {} (to host {}{})",
                i + 1,
                fingerprint(&bind.host_key),
                user.filter(|_| last)
                    .map(|u| format!(" as user {u}"))
                    .unwrap_or_default()
            ));
        }
    }
    let Some(last) = binds.last() else {
        return Ok(());
    };
    // A key allowed *to* the host it is forwarded to, but not beyond it, is useless
    // there and is not shown.
    if last.forwarding && user.is_none() && !hop_allowed(rules, Some(&last.host_key), None, None) {
        return Err(format!(
            "the key may be used to log in to host {} but not from it",
            fingerprint(&last.host_key)
        ));
    }
    Ok(())
}

/// Whether a key with these rules is listed on a connection with these bindings.
pub fn listable(rules: &Rules, binds: &[Bind]) -> bool {
    path_allowed(rules, binds, None).is_ok()
}

/// Whether a key with these rules may sign `data` on a connection with these bindings;
/// the error says why not.
pub fn check_sign(rules: &Rules, binds: &[Bind], key: &KeyBlob, data: &[u8]) -> Result<(), String> {
    if rules.is_empty() {
        return Ok(());
    }
    let Some(last) = binds.last() else {
        return Err("the key is restricted to destinations (ssh-add -h) and the connection is bound to none (not an OpenSSH 8.9+ login)".into());
    };
    let auth = userauth::parse(data, key)?;
    path_allowed(rules, binds, Some(&auth.user))?;
    if auth.session_id != last.session_id {
        return Err("the login request is for another session than the one bound last".into());
    }
    match &auth.host_key {
        None if binds.len() > 1 => {
            Err("a forwarded login request names no host key (publickey-hostbound needed)".into())
        }
        Some(host) if host.blob != last.host_key.blob => {
            Err("the login request names another host key than the one bound last".into())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use ssh_agent_lib::ssh_encoding::Encode;
    use ssh_key::public::KeyData;

    use super::*;
    use crate::destination::rules::{Hop, HostKey};

    fn key(seed: u8) -> KeyData {
        let secret = p256::SecretKey::from_slice(&[seed; 32]).unwrap();
        let verifying = p256::ecdsa::VerifyingKey::from(secret.public_key());
        KeyData::Ecdsa(ssh_key::public::EcdsaPublicKey::from(&verifying))
    }

    fn host(name: &str, seed: u8) -> Host {
        Host {
            user: None,
            hostname: Some(name.into()),
            keys: vec![HostKey {
                key: key(seed),
                is_ca: false,
            }],
        }
    }

    /// A hop: from (a host name and key seed, or here), to, and the user pattern.
    type HopSpec<'a> = (Option<(&'a str, u8)>, (&'a str, u8), Option<&'a str>);

    fn rules(hops: &[HopSpec]) -> Rules {
        Rules {
            hops: hops
                .iter()
                .map(|(from, (to, seed), user)| Hop {
                    from: from.map(|(n, s)| host(n, s)).unwrap_or_default(),
                    to: Host {
                        user: user.map(str::to_string),
                        ..host(to, *seed)
                    },
                })
                .collect(),
        }
    }

    fn bind(seed: u8, session: u8, forwarding: bool) -> Bind {
        Bind {
            host_key: KeyBlob::from_key(&key(seed)).unwrap(),
            session_id: vec![session; 32],
            forwarding,
        }
    }

    /// What ssh signs to log in as `user` in session `session` to the host of `seed`.
    fn login(user_key: &KeyBlob, user: &str, session: u8, host_seed: u8) -> Vec<u8> {
        let mut data = Vec::new();
        vec![session; 32].encode(&mut data).unwrap();
        50u8.encode(&mut data).unwrap();
        for s in [
            user,
            "ssh-connection",
            "publickey-hostbound-v00@openssh.com",
        ] {
            s.encode(&mut data).unwrap();
        }
        1u8.encode(&mut data).unwrap();
        "ecdsa-sha2-nistp256".encode(&mut data).unwrap();
        user_key.blob.encode(&mut data).unwrap();
        KeyBlob::from_key(&key(host_seed))
            .unwrap()
            .blob
            .encode(&mut data)
            .unwrap();
        data
    }

    const A: u8 = 1;
    const B: u8 = 2;

    #[test]
    fn signatures_follow_the_hops_a_key_is_allowed() {
        let user_key = KeyBlob::from_key(&key(9)).unwrap();
        let only_a = rules(&[(None, ("host_a", A), None)]);
        let a_then_b = rules(&[
            (None, ("host_a", A), None),
            (Some(("host_a", A)), ("host_b", B), None),
        ]);
        let check =
            |rules: &Rules, binds: &[Bind], data: &[u8]| check_sign(rules, binds, &user_key, data);

        // Straight to host_a: yes; to host_b: no.
        assert!(check(
            &only_a,
            &[bind(A, 10, false)],
            &login(&user_key, "u", 10, A)
        )
        .is_ok());
        assert!(check(
            &only_a,
            &[bind(B, 11, false)],
            &login(&user_key, "u", 11, B)
        )
        .is_err());
        // Through host_a on to host_b: only where that hop is allowed.
        let path = [bind(A, 12, true), bind(B, 13, false)];
        let data = login(&user_key, "u", 13, B);
        assert!(check(&only_a, &path, &data).unwrap_err().contains("hop 2"));
        assert!(check(&a_then_b, &path, &data).is_ok());
        // A login for another session, or another host, than the one bound last.
        assert!(check(&a_then_b, &path, &login(&user_key, "u", 12, B)).is_err());
        assert!(check(&a_then_b, &path, &login(&user_key, "u", 13, A)).is_err());
        // Not a login at all, or on a connection bound to nothing.
        assert!(check(&only_a, &[bind(A, 10, false)], b"some file to sign").is_err());
        assert!(check(&only_a, &[], &login(&user_key, "u", 10, A)).is_err());
        // Unconstrained keys sign anything anywhere.
        assert!(check(&Rules::default(), &[bind(B, 11, false)], b"anything").is_ok());
    }

    #[test]
    fn users_and_listing() {
        let user_key = KeyBlob::from_key(&key(9)).unwrap();
        let as_alice = rules(&[(None, ("host_a", A), Some("al*"))]);
        let binds = [bind(A, 10, false)];
        assert!(check_sign(
            &as_alice,
            &binds,
            &user_key,
            &login(&user_key, "alice", 10, A)
        )
        .is_ok());
        assert!(check_sign(
            &as_alice,
            &binds,
            &user_key,
            &login(&user_key, "bob", 10, A)
        )
        .is_err());
        // Listed locally, and where it may be used; hidden where it may not, and on a
        // host it may reach but not leave.
        assert!(listable(&as_alice, &[]));
        assert!(listable(&as_alice, &binds));
        assert!(!listable(&as_alice, &[bind(B, 11, false)]));
        assert!(!listable(&as_alice, &[bind(A, 12, true)]));
    }
}
