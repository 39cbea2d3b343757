#!/usr/bin/env bash
# Builds the Debian package target/debian/tpmd_<version>_<arch>.deb from the release
# binaries: a staged tree with every file where Debian puts it (man pages and shell
# completions generated from the clap definitions by packaging/docgen), Depends computed
# by dpkg-shlibdeps, maintainer scripts from packaging/debian/, then `dpkg-deb --build`.
# Installs the tools it needs with apt-get when something is missing.
#
#   packaging/deb.sh [--version VERSION] [--no-build]
#
#   --version VERSION   package version [default: the workspace version with revision 1,
#                       e.g. 0.1.0-1]
#   --no-build          package what is already in target/release
#
# DEBFULLNAME and DEBEMAIL override the maintainer; SOURCE_DATE_EPOCH the date of the
# man pages and the changelog (default: the last commit's). Other tpmd_*.deb files in
# target/debian are removed: one package is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

version=""
build=yes
while [ $# -gt 0 ]; do
    case "$1" in
    --version)
        [ $# -ge 2 ] || { echo "deb.sh: --version needs a value, e.g. --version 0.1.0-2" >&2; exit 2; }
        version=$2
        shift 2
        ;;
    --no-build) build=no; shift ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "deb.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

# --- tools ------------------------------------------------------------------------

tools=(dpkg-dev binutils gzip pkg-config systemd udev)
missing=()
for p in "${tools[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null 2>&1 || {
    echo "deb.sh: no Rust toolchain: install it with rustup (https://rustup.rs), Rust 1.89 or newer" >&2
    exit 1
}

# --- build ------------------------------------------------------------------------

target=${CARGO_TARGET_DIR:-target}
release=$target/release
crates=(-p tpmd -p tpm-keyctl -p tpmd-ssh-agent -p tpmd-simulator -p tpmd-pkcs11 -p tpmd-docgen)
if [ "$build" = yes ]; then
    cargo build --release --locked "${crates[@]}"
fi
for f in tpmd tpm-keyctl tpmd-ssh-agent tpmd-simulator libtpmd_pkcs11.so tpmd-docgen; do
    [ -f "$release/$f" ] || { echo "deb.sh: $release/$f is missing; run without --no-build" >&2; exit 1; }
done

if [ -z "$version" ]; then
    upstream=$(cargo pkgid -p tpmd | sed 's/.*[#@]//')
    version="$upstream-1"
fi
if ! dpkg --validate-version "$version" 2>/dev/null; then
    echo "deb.sh: '$version' is not a valid Debian version (e.g. 0.1.0-1)" >&2
    exit 2
fi
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
maintainer="${DEBFULLNAME:-tpmd maintainers} <${DEBEMAIL:-maintainers@users.noreply.h-seed-13a2d9a8.example}>"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

# Where this release of Debian puts each kind of file (bookworm: /lib/systemd/system,
# /lib/udev; later releases: /usr/lib/...).
pc() { pkg-config --variable="$2" "$1" 2>/dev/null || true; }
unitdir=$(pc systemd systemdsystemunitdir)
userunitdir=$(pc systemd systemduserunitdir)
sysusersdir=$(pc systemd sysusersdir)
udevdir=$(pc udev udevdir)
p11moduledir=$(pc p11-kit-1 p11_module_path)
p11configdir=$(pc p11-kit-1 p11_module_configs)
: "${unitdir:=/usr/lib/systemd/system}" "${userunitdir:=/usr/lib/systemd/user}"
: "${sysusersdir:=/usr/lib/sysusers.d}" "${udevdir:=/usr/lib/udev}"
: "${p11moduledir:=/usr/lib/$multiarch/pkcs11}" "${p11configdir:=/usr/share/p11-kit/modules}"

# --- the tree ---------------------------------------------------------------------

umask 022
out=$target/debian
stage=$out/tpmd
rm -rf "$stage" "$out/shlibdeps"
mkdir -p "$stage/DEBIAN"

# As dh_strip does: no debug sections, no .comment/.note.
for bin in tpmd tpm-keyctl tpmd-ssh-agent tpmd-simulator; do
    install -D -m 0755 "$release/$bin" "$stage/usr/bin/$bin"
    strip --remove-section=.comment --remove-section=.note "$stage/usr/bin/$bin"
done
install -D -m 0644 "$release/libtpmd_pkcs11.so" "$stage$p11moduledir/libtpmd_pkcs11.so"
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$stage$p11moduledir/libtpmd_pkcs11.so"
# The module file names the library relatively: p11-kit finds it in its module directory.
install -D -m 0644 p11-kit/tpmd.module "$stage$p11configdir/tpmd.module"

install -D -m 0644 systemd/tpmd.service "$stage$unitdir/tpmd.service"
# sshd host keys in the TPM: not enabled by the package; its configuration is an example
# the admin copies to /etc/tpmd/ssh-hostkeys.conf (ssh-agent/README.md).
install -D -m 0644 systemd/tpmd-ssh-hostkeys.service "$stage$unitdir/tpmd-ssh-hostkeys.service"
install -D -m 0644 systemd/tpmd-ssh-hostkeys.socket "$stage$unitdir/tpmd-ssh-hostkeys.socket"
install -D -m 0644 systemd/ssh-hostkeys.conf "$stage/usr/share/doc/tpmd/examples/ssh-hostkeys.conf"
install -D -m 0644 systemd/tpmd-user.service "$stage$userunitdir/tpmd.service"
install -D -m 0644 systemd/tpmd-ssh-agent.service "$stage$userunitdir/tpmd-ssh-agent.service"
install -D -m 0644 systemd/tpmd-ssh-agent.socket "$stage$userunitdir/tpmd-ssh-agent.socket"
install -D -m 0644 systemd/tpmd.sysusers.conf "$stage$sysusersdir/tpmd.conf"
install -D -m 0644 systemd/org.tpmd.Daemon1.conf "$stage/usr/share/dbus-1/system.d/org.tpmd.Daemon1.conf"
install -D -m 0644 systemd/org.tpmd.Daemon1.service \
    "$stage/usr/share/dbus-1/system-services/org.tpmd.Daemon1.service"
install -D -m 0644 docs/org.tpmd.Daemon1.xml "$stage/usr/share/dbus-1/interfaces/org.tpmd.Daemon1.xml"
install -D -m 0644 udev/60-tpmd.rules "$stage$udevdir/rules.d/60-tpmd.rules"
# Signed PCR policies for the whole machine (tpmd --policy-dir's default); packages of
# the machine's owner drop theirs here.
install -d -m 0755 "$stage/etc/tpmd/policies"

date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)
"$release/tpmd-docgen" "$stage" --date "$date"
find "$stage/usr/share/man" -type f -name '*.1' -exec gzip -9n {} +

# The unit's Documentation= names README.md, so it stays uncompressed.
doc=$stage/usr/share/doc/tpmd
install -D -m 0644 README.md "$doc/README.md"
first_year=$(git log --reverse --format=%ad --date=format:%Y 2>/dev/null | sed -n 1p)
last_year=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)
years=${first_year:-$last_year}
[ "$years" = "$last_year" ] || years="$years-$last_year"
sed -e "s|@MAINTAINER@|$maintainer|" -e "s|@YEARS@|$years|" packaging/debian/copyright >"$doc/copyright"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
{
    echo "tpmd ($version) unstable; urgency=medium"
    echo
    echo "  * Built by packaging/deb.sh from commit $commit."
    echo
    echo " -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$doc/changelog.Debian.gz"

find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -type f -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# --- control ----------------------------------------------------------------------

for script in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$script" "$stage/DEBIAN/$script"
done

# dpkg-shlibdeps wants a source tree around it; a minimal one will do.
mkdir -p "$out/shlibdeps/debian"
printf 'Source: tpmd\n\nPackage: tpmd\nArchitecture: any\n' >"$out/shlibdeps/debian/control"
elves=()
while IFS= read -r -d '' f; do
    elves+=("-e$(realpath "$f")")
done < <(find "$stage/usr/bin" "$stage$p11moduledir" -type f -print0)
shlibs=$(cd "$out/shlibdeps" && dpkg-shlibdeps -O "${elves[@]}" | sed -n 's/^shlibs:Depends=//p')
rm -rf "$out/shlibdeps"
[ -n "$shlibs" ] || { echo "deb.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s|@INSTALLED_SIZE@|$installed_size|" -e "s|@SHLIBS_DEPENDS@|$shlibs|" \
    packaging/debian/control.in >"$stage/DEBIAN/control"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
    xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"

deb=$out/tpmd_${version#*:}_$arch.deb
find "$out" -maxdepth 1 -name 'tpmd_*.deb' -delete
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
rm -rf "$stage"
echo "$deb"
