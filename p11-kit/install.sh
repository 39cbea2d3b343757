#!/bin/sh
# Installs libtpmd_pkcs11.so and its p11-kit module file.
#
#   p11-kit/install.sh [path/to/libtpmd_pkcs11.so]      (default: target/release/...)
#
# DESTDIR is honoured for packaging. Run as root for a system-wide install.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
lib=${1:-"$here/../target/release/libtpmd_pkcs11.so"}
if [ ! -f "$lib" ]; then
    echo "install.sh: $lib not found; build it first with: cargo build --release -p tpmd-pkcs11" >&2
    exit 1
fi
moduledir=$(pkg-config --variable=p11_module_path p11-kit-1 2>/dev/null || true)
[ -n "$moduledir" ] || moduledir=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/pkcs11
configdir=$(pkg-config --variable=p11_module_configs p11-kit-1 2>/dev/null || true)
[ -n "$configdir" ] || configdir=/usr/share/p11-kit/modules
DESTDIR=${DESTDIR:-}
install -d "$DESTDIR$moduledir" "$DESTDIR$configdir"
install -m 0644 "$lib" "$DESTDIR$moduledir/libtpmd_pkcs11.so"
install -m 0644 "$here/tpmd.module" "$DESTDIR$configdir/tpmd.module"
echo "installed $DESTDIR$moduledir/libtpmd_pkcs11.so and $DESTDIR$configdir/tpmd.module"
echo "check with: p11-kit list-modules | grep -A3 tpmd"
