//! EME-OAEP (RFC 8017, 7.1) with MGF1 over the label's hash and labels of any bytes: the
//! RSA crate takes only text labels, and a TPM 2.0 only labels that end in a zero byte.
//! Decoding runs in constant time over the block, so a failure says nothing about where
//! the padding went wrong.

use rand::{CryptoRng, RngCore};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::error::{Pkcs11Error, Result};
use crate::mechanism::{Hash, Hasher};

fn digest(hash: Hash, parts: &[&[u8]]) -> Vec<u8> {
    let mut h = Hasher::new(hash);
    for p in parts {
        h.update(p);
    }
    h.finish()
}

/// XORs MGF1(seed) into `out`.
fn mgf1_xor(hash: Hash, seed: &[u8], out: &mut [u8]) {
    for (counter, chunk) in out.chunks_mut(hash.size()).enumerate() {
        let c = u32::try_from(counter).unwrap_or(u32::MAX).to_be_bytes();
        let mask = digest(hash, &[seed, &c]);
        for (o, m) in chunk.iter_mut().zip(mask) {
            *o ^= m;
        }
    }
}

/// The largest message OAEP fits in a `k`-byte modulus with this hash.
pub fn max_message(k: usize, hash: Hash) -> usize {
    k.saturating_sub(2 * hash.size() + 2)
}

/// The `k`-byte encoded message of `message`.
pub fn encode<R: RngCore + CryptoRng>(
    rng: &mut R,
    k: usize,
    hash: Hash,
    label: &[u8],
    message: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let h = hash.size();
    if k < 2 * h + 2 || message.len() > max_message(k, hash) {
        return Err(Pkcs11Error::DataLenRange);
    }
    let mut em = Zeroizing::new(vec![0u8; k]);
    let (seed, db) = em[1..].split_at_mut(h);
    db[..h].copy_from_slice(&digest(hash, &[label]));
    let one = db.len() - message.len() - 1;
    db[one] = 1;
    db[one + 1..].copy_from_slice(message);
    rng.fill_bytes(seed);
    mgf1_xor(hash, seed, db);
    mgf1_xor(hash, db, seed);
    Ok(em)
}

/// The message in a `k`-byte encoded block, or CKR_ENCRYPTED_DATA_INVALID.
pub fn decode(em: &[u8], hash: Hash, label: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let h = hash.size();
    if em.len() < 2 * h + 2 {
        return Err(Pkcs11Error::EncryptedDataInvalid);
    }
    let mut block = Zeroizing::new(em.to_vec());
    let (first, rest) = block.split_at_mut(1);
    let (seed, db) = rest.split_at_mut(h);
    mgf1_xor(hash, db, seed);
    mgf1_xor(hash, seed, db);
    let mut good = first[0].ct_eq(&0) & db[..h].ct_eq(&digest(hash, &[label])[..]);
    // After the label hash: zeros, one 0x01, then the message.
    let mut looking = Choice::from(1);
    let mut bad_byte = Choice::from(0);
    let mut index = 0u32;
    for (i, byte) in db.iter().enumerate().skip(h) {
        let is_one = byte.ct_eq(&1);
        let is_zero = byte.ct_eq(&0);
        let i = u32::try_from(i).unwrap_or(u32::MAX);
        index.conditional_assign(&i, looking & is_one);
        looking &= !is_one;
        bad_byte |= looking & !is_zero;
    }
    good &= !bad_byte & !looking;
    if !bool::from(good) {
        return Err(Pkcs11Error::EncryptedDataInvalid);
    }
    let start = usize::try_from(index)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    Ok(Zeroizing::new(db.get(start..).unwrap_or_default().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::{Oaep, RsaPrivateKey};

    #[test]
    fn round_trips_and_agrees_with_the_rsa_crate() {
        let mut rng = rand::thread_rng();
        for hash in [Hash::Sha1, Hash::Sha256, Hash::Sha512] {
            for label in [&b""[..], b"label", b"\xff\x00binary"] {
                let em = encode(&mut rng, 256, hash, label, b"secret").unwrap();
                assert_eq!(&*decode(&em, hash, label).unwrap(), b"secret");
                assert!(decode(&em, hash, b"other").is_err());
                let mut broken = em.to_vec();
                broken[0] = 1;
                assert!(decode(&broken, hash, label).is_err());
            }
        }
        let longest = vec![7u8; max_message(256, Hash::Sha256)];
        assert!(encode(&mut rng, 256, Hash::Sha256, b"", &longest).is_ok());
        assert!(encode(
            &mut rng,
            256,
            Hash::Sha256,
            b"",
            &[longest, vec![1]].concat()
        )
        .is_err());

        // A text label through the rsa crate's OAEP decodes the same way here.
        let key = RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let ct = key
            .to_public_key()
            .encrypt(
                &mut rng,
                Oaep::new_with_label::<sha2::Sha256, _>("tls"),
                b"hi",
            )
            .unwrap();
        use rsa::traits::{PrivateKeyParts, PublicKeyParts};
        let em = rsa::BigUint::from_bytes_be(&ct)
            .modpow(key.d(), key.n())
            .to_bytes_be();
        let mut padded = vec![0u8; 128 - em.len()];
        padded.extend(em);
        assert_eq!(&*decode(&padded, Hash::Sha256, b"tls").unwrap(), b"hi");
    }
}
