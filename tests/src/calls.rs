//! tpmd's per-signature calls with plain byte slices, for tests: the proxy takes them as
//! `Bytes` (one slice on the wire), which would otherwise wrap every argument here.

use tpmd_api::dbus::{ByteBuf, Bytes, DecryptOptions};
use tpmd_api::{Daemon1Proxy, DaemonError};

/// `Sign`: `data` is the digest (or, for rsa-pkcs1-raw, the bytes to pad and sign).
pub async fn sign(
    proxy: &Daemon1Proxy<'_>,
    key: &[u8],
    auth: &[u8],
    scheme: &str,
    hash: &str,
    data: &[u8],
) -> Result<Vec<u8>, DaemonError> {
    let (key, auth, data) = (Bytes::new(key), Bytes::new(auth), Bytes::new(data));
    proxy
        .sign(key, auth, scheme, hash, data)
        .await
        .map(ByteBuf::into_vec)
}

/// `Decrypt`.
pub async fn decrypt(
    proxy: &Daemon1Proxy<'_>,
    key: &[u8],
    auth: &[u8],
    scheme: &str,
    hash: &str,
    ciphertext: &[u8],
) -> Result<Vec<u8>, DaemonError> {
    let (key, auth, ciphertext) = (Bytes::new(key), Bytes::new(auth), Bytes::new(ciphertext));
    proxy
        .decrypt(key, auth, scheme, hash, ciphertext)
        .await
        .map(ByteBuf::into_vec)
}

/// `DecryptWithOptions`.
pub async fn decrypt_with_options(
    proxy: &Daemon1Proxy<'_>,
    key: &[u8],
    auth: &[u8],
    (scheme, hash): (&str, &str),
    ciphertext: &[u8],
    options: DecryptOptions,
) -> Result<Vec<u8>, DaemonError> {
    let (key, auth, ciphertext) = (Bytes::new(key), Bytes::new(auth), Bytes::new(ciphertext));
    proxy
        .decrypt_with_options(key, auth, scheme, hash, ciphertext, options)
        .await
        .map(ByteBuf::into_vec)
}
