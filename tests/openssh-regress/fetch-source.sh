#!/usr/bin/env bash
# Fetches and unpacks the Debian source of the installed OpenSSH into DEST (default
# target/openssh-regress/source), for its regress/ scripts. apt runs with a private
# configuration (its own sources.list with deb-src lines for this machine's Debian
# release, its own state and cache directories under DEST's parent), so the machine's apt
# configuration is neither read nor changed. Prints the source directory. A second run
# reuses what the first unpacked. On failure: one line on stderr saying why, exit 1.
set -euo pipefail

dest=${1:-"$(cd "$(dirname "$0")/../.." && pwd)/target/openssh-regress/source"}
fail() { echo "openssh regress: $*" >&2; exit 1; }

version=$(dpkg-query -W -f='${Version}' openssh-client 2>/dev/null) \
  || fail "openssh-client is not installed (run tests/install-deps.sh)"
upstream=${version#*:}; upstream=${upstream%%-*}
tree="$dest/openssh-${version#*:}"
if [ -f "$tree/regress/test-exec.sh" ]; then
  echo "$tree"
  exit 0
fi

command -v dpkg-source >/dev/null || fail "dpkg-source is missing: install dpkg-dev (tests/install-deps.sh)"
. /etc/os-release
codename=${VERSION_CODENAME:-}
[ -n "$codename" ] || fail "cannot tell this machine's Debian release from /etc/os-release"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || fail "$keyring is missing: install debian-archive-keyring"

apt_dir="$dest/apt"
mkdir -p "$apt_dir/sources.list.d" "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial" "$dest"
mirror=${OPENSSH_REGRESS_MIRROR:-http://deb.debian.org}
cat > "$apt_dir/sources.list" <<SOURCES
deb-src [signed-by=$keyring] $mirror/debian $codename main
deb-src [signed-by=$keyring] $mirror/debian $codename-updates main
deb-src [signed-by=$keyring] $mirror/debian-security $codename-security main
SOURCES
apt_options=(
  -o "Dir::Etc::SourceList=$apt_dir/sources.list"
  -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
  -o "Dir::Etc::Parts=$apt_dir/apt.conf.d"
  -o "Dir::Etc::Preferences=$apt_dir/preferences"
  -o "Dir::Etc::PreferencesParts=$apt_dir/preferences.d"
  -o "Dir::State=$apt_dir/state"
  -o "Dir::State::Lists=$apt_dir/state/lists"
  -o "Dir::State::status=/var/lib/dpkg/status"
  -o "Dir::Cache=$apt_dir/cache"
  -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=root"
  -q
)
log="$dest/fetch.log"
apt-get "${apt_options[@]}" update >"$log" 2>&1 \
  || fail "apt-get update with the private sources list failed ($(grep -m1 -E '^(E|Err):' "$log" || tail -n1 "$log")); see $log"
work="$dest/download"
rm -rf "$work" && mkdir -p "$work"
(cd "$work" && apt-get "${apt_options[@]}" source --download-only "openssh=$version") >>"$log" 2>&1 \
  || fail "apt-get source openssh=$version failed ($(grep -m1 -E '^E:' "$log" || tail -n1 "$log")); see $log"
dsc=$(ls "$work"/openssh_*.dsc 2>/dev/null | head -n1)
[ -n "$dsc" ] || fail "apt-get source left no .dsc in $work; see $log"
rm -rf "$tree.tmp"
dpkg-source -x "$dsc" "$tree.tmp" >>"$log" 2>&1 || fail "dpkg-source -x $dsc failed; see $log"
[ -f "$tree.tmp/regress/test-exec.sh" ] || fail "the openssh $upstream source has no regress/test-exec.sh"
mv "$tree.tmp" "$tree"
rm -rf "$work"
echo "$tree"
