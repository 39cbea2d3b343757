#!/usr/bin/env bash
# Installs the system packages tpmd needs to build, run on the simulator and be tested,
# if any are missing. Debian/Ubuntu. Safe to run again: it does nothing when all is there.
set -euo pipefail

packages=(
  # build
  pkg-config libtss2-dev gcc
  # the embedded simulator
  swtpm swtpm-tools
  # D-Bus
  dbus dbus-daemon
  # the real clients the tests use
  openssl openssh-client tpm2-openssl tpm2-tools
  # ssh-agent tests: sshd on 127.0.0.1, ssh-keygen -Y
  openssh-server
  # PKCS#11 tests and benchmarks: pkcs11-tool, p11tool, p11-kit, libp11, openvpn, NSS tools,
  # and tpm2-pkcs11 as the peer benchmark
  opensc gnutls-bin p11-kit p11-kit-modules libengine-pkcs11-openssl openvpn libnss3-tools
  libtpm2-pkcs11-1 libtpm2-pkcs11-tools
  # gcr's libgck through GObject introspection, as gnome-keyring and Seahorse use it
  python3-gi gir1.2-gck-1
  # the benchmarks' tpm2-pkcs11 peer: tpm2_ptool needs a resource manager in front of swtpm
  # while it makes the key; on the simulator's models tpm2-pkcs11 reaches the TPM through
  # the cmd TCTI (tests/src/bin/tpm-stdio.rs)
  tpm2-abrmd libtss2-tcti-tabrmd0 libtss2-tcti-cmd0
  # TPM 1.2 interop: trousers' tcsd and tpm-tools
  trousers tpm-tools libtspi-dev
  # checking the unit files
  systemd
  # the Debian package (packaging/deb.sh, packaging/test.sh): dpkg-shlibdeps, strip,
  # lintian, man -l, setpriv
  dpkg-dev binutils lintian man-db util-linux
  # OpenSSH's regress agent tests: its Debian source (apt-get source, dpkg-source), a
  # PKCS#11 token for agent-pkcs11.sh, the archive key apt checks the sources with
  debian-archive-keyring softhsm2
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || {
  echo "error: no Rust toolchain: install it with rustup (https://rustup.rs), Rust 1.89 or newer" >&2
  exit 1
}
