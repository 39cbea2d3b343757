#!/usr/bin/python3
"""Signs with a key of the tpmd token the way gnome-keyring and Seahorse reach it: gcr's
libgck, modules from p11-kit's registry. Usage: gck-sign.py KEY_LABEL DATA_FILE SIG_FILE.
Prints what it found; exits non-zero with one line on any failure."""
import hashlib
import sys

import gi

gi.require_version("Gck", "1")
from gi.repository import Gck  # noqa: E402

CKA_CLASS, CKA_LABEL, CKA_KEY_TYPE = 0x0, 0x3, 0x100
CKO_PRIVATE_KEY = 3
CKK_RSA, CKK_EC = 0, 3
CKM_SHA256_RSA_PKCS, CKM_ECDSA_SHA256 = 0x40, 0x1044


def der_integer(value):
    value = value.lstrip(b"\0") or b"\0"
    if value[0] & 0x80:
        value = b"\0" + value
    return bytes([0x02, len(value)]) + value


def ecdsa_der(raw):
    """PKCS#11 gives ECDSA signatures as r || s; openssl verifies the DER SEQUENCE."""
    half = len(raw) // 2
    body = der_integer(raw[:half]) + der_integer(raw[half:])
    return bytes([0x30, len(body)]) + body


def main(label, data_path, sig_path):
    seen = []
    for module in Gck.modules_initialize_registered(None):
        for slot in module.get_slots(True):
            token = slot.get_token_info()
            seen.append(f"{module.get_info().library_description.strip()}: {token.label.strip()!r}")
            if not token.label.startswith("tpmd"):
                continue
            print(f"module: {module.get_info().library_description.strip()}")
            print(f"token: {token.label.strip()} ({token.model.strip()})")
            session = slot.open_session(Gck.SessionOptions.READ_ONLY, None)
            match = Gck.Builder.new(Gck.BuilderFlags.NONE)
            match.add_ulong(CKA_CLASS, CKO_PRIVATE_KEY)
            match.add_string(CKA_LABEL, label)
            keys = session.find_objects(match.end(), None)
            if len(keys) != 1:
                sys.exit(f"{len(keys)} private keys labelled {label!r} on the token")
            key_type = int.from_bytes(bytes(keys[0].get_data(CKA_KEY_TYPE, None)), sys.byteorder)
            mechanism = {CKK_RSA: CKM_SHA256_RSA_PKCS, CKK_EC: CKM_ECDSA_SHA256}[key_type]
            data = open(data_path, "rb").read()
            signature = bytes(session.sign(keys[0], mechanism, data, None))
            if key_type == CKK_EC:
                signature = ecdsa_der(signature)
            open(sig_path, "wb").write(signature)
            print(f"signed sha256 {hashlib.sha256(data).hexdigest()[:16]}...: {len(signature)} bytes")
            return
    sys.exit(f"no token whose label starts with tpmd among p11-kit's registered modules: {seen}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: gck-sign.py KEY_LABEL DATA_FILE SIG_FILE")
    main(*sys.argv[1:])
