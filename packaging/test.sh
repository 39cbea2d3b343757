#!/usr/bin/env bash
# Tests the Debian package on this machine, end to end:
#   build it (packaging/deb.sh); check its file list and modes (dpkg-deb -c); lintian
#   (no errors, every warning explained in packaging/README.md); install it with
#   `apt-get install ./...deb`; systemd-analyze verify on the installed units; `man -l`
#   on every man page; the installed tpmd (as user tpmd, on the embedded simulator, on a
#   private bus that enforces the installed D-Bus policy) signs with a key wrapped by the
#   installed tpm-keyctl; p11tool sees the token through the installed p11-kit module
#   with no --provider, and signs; upgrade to a copy with a higher version (the running
#   tpmd keeps serving, and the restarted one signs with the same key); purge, and nothing
#   the package created is left.
#
# It installs a package machine-wide (the p11-kit module is seen by every PKCS#11 user),
# so tests/run-all.sh runs it after the other tests. It leaves the machine as it found
# it: the package purged, the tpmd user (and the tss group, if it made it) removed, its
# processes stopped, even when a check fails; a run killed half-way is cleaned up by
# the next. Runs as root (or with sudo). Prints "N passed, M failed" last.

set -u
cd "$(dirname "$0")/.." || exit 2

passed=0
failed=0
ok() {
    echo "ok   - $1"
    passed=$((passed + 1))
}
not_ok() {
    echo "FAIL - $1"
    if [ -n "${2:-}" ]; then
        printf '%s\n' "$2" | sed 's/^/       /'
    fi
    failed=$((failed + 1))
}
# check DESCRIPTION COMMAND...: runs COMMAND, ok if it succeeds, else its output.
check() {
    local what=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$what"; else not_ok "$what" "$out"; fi
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export PATH="$PATH:/usr/sbin:/sbin"
command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"

# --- what the machine had, and cleaning up ------------------------------------------

# What this test created, for the cleanup of this run or of the next one if this one is
# killed. In /run: gone at reboot, like anything the test could leave running.
state=/run/tpmd-package-test
tmp=$(mktemp -d /tmp/tpmd-package-test.XXXXXX)
chmod 0755 "$tmp" # the tpmd user reaches the bus socket and its state below
tpmd_pid=""
bus_pid=""

deb2=""

stop_processes() {
    local pid
    for pid in $tpmd_pid $bus_pid; do
        $sudo kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    tpmd_pid=""
    bus_pid=""
}
# remember PID: a process of this test, for the next run to stop if this one is killed.
remember() { echo "pid=$1" | $sudo tee -a "$state" >/dev/null; }

# restore STATE_FILE: purges the package and removes the user and group the test made.
restore() {
    local file=$1
    [ -f "$file" ] || return 0
    if dpkg-query -W -f='${db:Status-Status}' tpmd 2>/dev/null | grep -qv '^not-installed$'; then
        DEBIAN_FRONTEND=noninteractive $sudo apt-get purge -y -q tpmd >/dev/null 2>&1 ||
            $sudo dpkg --purge tpmd >/dev/null 2>&1
    fi
    # The processes a killed run left (by pid, if they still are tpmd or the bus).
    local pid
    for pid in $(sed -n 's/^pid=//p' "$file"); do
        case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
        tpmd | dbus-daemon) $sudo kill -KILL "$pid" 2>/dev/null ;;
        esac
    done
    if grep -qx 'user=created' "$file" && getent passwd tpmd >/dev/null; then
        $sudo userdel tpmd
    fi
    if grep -qx 'group=created' "$file" && getent group tss >/dev/null; then
        $sudo groupdel tss
    fi
    local dir
    for dir in $(sed -n 's|^tmp=\(/tmp/tpmd-package-test\.[A-Za-z0-9]*\)$|\1|p' "$file"); do
        $sudo rm -rf "$dir"
    done
    $sudo rm -f "$file"
}

cleanup() {
    stop_processes
    restore "$state"
    $sudo rm -rf "$tmp"
    # The upgrade's copy is the test's; the package built first is not kept either.
    [ -z "$deb2" ] || rm -f "$deb2"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -f "$state" ]; then
    echo "note - a previous run did not finish; restoring what it changed first"
    restore "$state"
fi
if dpkg-query -W -f='${db:Status-Status}' tpmd 2>/dev/null | grep -qv '^not-installed$'; then
    not_ok "tpmd is already installed on this machine: this test installs and purges it; remove it first (apt-get purge tpmd)"
    finish
fi
{
    if getent passwd tpmd >/dev/null; then echo user=existed; else echo user=created; fi
    if getent group tss >/dev/null; then echo group=existed; else echo group=created; fi
    echo "tmp=$tmp"
} | $sudo tee "$state" >/dev/null

for tool in lintian dpkg-deb apt-get dbus-daemon dbus-send openssl p11tool man systemd-analyze setpriv; do
    command -v "$tool" >/dev/null 2>&1 || { not_ok "$tool is missing (run tests/install-deps.sh)"; finish; }
done

# --- build --------------------------------------------------------------------------

deb=$(./packaging/deb.sh 2>"$tmp/deb.log" | tail -n1)
if [ -f "$deb" ]; then
    ok "packaging/deb.sh built $deb"
else
    not_ok "packaging/deb.sh built no package" "$(tail -n 20 "$tmp/deb.log")"
    finish
fi
version=$(dpkg-deb -f "$deb" Version)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
pc() { pkg-config --variable="$2" "$1" 2>/dev/null || true; }
unitdir=$(pc systemd systemdsystemunitdir)
userunitdir=$(pc systemd systemduserunitdir)
udevdir=$(pc udev udevdir)
sysusersdir=$(pc systemd sysusersdir)
: "${unitdir:=/usr/lib/systemd/system}" "${userunitdir:=/usr/lib/systemd/user}"
: "${sysusersdir:=/usr/lib/sysusers.d}" "${udevdir:=/usr/lib/udev}"

depends=$(dpkg-deb -f "$deb" Depends)
recommends=$(dpkg-deb -f "$deb" Recommends)
if printf '%s' "$depends" | grep -q 'libc6 (>=' && printf '%s' "$depends" | grep -q 'libtss2-' &&
    printf '%s' "$recommends" | grep -qw swtpm && ! printf '%s' "$depends" | grep -qw swtpm; then
    ok "Depends come from the binaries (libc6, libtss2-...), swtpm is only Recommended"
else
    not_ok "Depends/Recommends" "Depends: $depends"$'\n'"Recommends: $recommends"
fi

# --- file list and modes ------------------------------------------------------------

listing=$(dpkg-deb -c "$deb")
files=$(printf '%s\n' "$listing" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $1, $2, $6 }')
expect=(
    "-rwxr-xr-x /usr/bin/tpmd" "-rwxr-xr-x /usr/bin/tpm-keyctl"
    "-rwxr-xr-x /usr/bin/tpmd-ssh-agent" "-rwxr-xr-x /usr/bin/tpmd-simulator"
    "-rw-r--r-- /usr/lib/$multiarch/pkcs11/libtpmd_pkcs11.so"
    "-rw-r--r-- /usr/share/p11-kit/modules/tpmd.module"
    "-rw-r--r-- $unitdir/tpmd.service"
    "-rw-r--r-- $unitdir/tpmd-ssh-hostkeys.service"
    "-rw-r--r-- $unitdir/tpmd-ssh-hostkeys.socket"
    "-rw-r--r-- /usr/share/doc/tpmd/examples/ssh-hostkeys.conf"
    "-rw-r--r-- $userunitdir/tpmd.service"
    "-rw-r--r-- $userunitdir/tpmd-ssh-agent.service"
    "-rw-r--r-- $userunitdir/tpmd-ssh-agent.socket"
    "-rw-r--r-- $sysusersdir/tpmd.conf"
    "-rw-r--r-- /usr/share/dbus-1/system.d/org.tpmd.Daemon1.conf"
    "-rw-r--r-- /usr/share/dbus-1/system-services/org.tpmd.Daemon1.service"
    "-rw-r--r-- /usr/share/dbus-1/interfaces/org.tpmd.Daemon1.xml"
    "-rw-r--r-- $udevdir/rules.d/60-tpmd.rules"
    "-rw-r--r-- /usr/share/doc/tpmd/README.md"
    "-rw-r--r-- /usr/share/doc/tpmd/copyright"
    "-rw-r--r-- /usr/share/doc/tpmd/changelog.Debian.gz"
)
for bin in tpmd tpm-keyctl tpmd-ssh-agent tpmd-simulator; do
    expect+=(
        "-rw-r--r-- /usr/share/man/man1/$bin.1.gz"
        "-rw-r--r-- /usr/share/bash-completion/completions/$bin"
        "-rw-r--r-- /usr/share/zsh/vendor-completions/_$bin"
        "-rw-r--r-- /usr/share/fish/vendor_completions.d/$bin.fish"
    )
done
for sub in wrap generate sign pubkey doctor srk srk-create; do
    expect+=("-rw-r--r-- /usr/share/man/man1/tpm-keyctl-$sub.1.gz")
done
absent=""
for entry in "${expect[@]}"; do
    mode=${entry%% *}
    path=${entry#* }
    printf '%s\n' "$files" | grep -qxF -- "$mode root/root $path" || absent="$absent$entry"$'\n'
done
if [ -z "$absent" ]; then
    ok "dpkg-deb -c: ${#expect[@]} files where Debian puts them, root/root, with their modes"
else
    not_ok "dpkg-deb -c lacks (mode owner path)" "$absent"$'listing:\n'"$listing"
fi
odd=$(printf '%s\n' "$listing" | awk '$2 != "root/root" || $1 ~ /^[^l].{7}w/ || $1 ~ /[sS]/')
if [ -z "$odd" ]; then
    ok "dpkg-deb -c: nothing world-writable, set-id or owned by anyone but root"
else
    not_ok "dpkg-deb -c: odd owners or modes" "$odd"
fi

# --- lintian ------------------------------------------------------------------------

report=$(lintian --no-tag-display-limit "$deb" 2>&1)
errors=$(printf '%s\n' "$report" | grep '^E:')
if [ -z "$errors" ]; then
    ok "lintian reports no errors"
else
    not_ok "lintian reports errors" "$errors"
fi
unexplained=""
for tag in $(printf '%s\n' "$report" | sed -n 's/^W: tpmd[^:]*: \([a-z0-9-]*\).*/\1/p' | sort -u); do
    grep -q "^| \`$tag\`" packaging/README.md || unexplained="$unexplained$tag"$'\n'
done
if [ -z "$unexplained" ]; then
    ok "each lintian warning is explained in packaging/README.md"
else
    not_ok "lintian warnings without a line in packaging/README.md" "$unexplained"
fi

# --- install ------------------------------------------------------------------------

case "$deb" in /*) ;; *) deb=./$deb ;; esac
# The package's directories that do not exist yet: the purge must remove them again.
new_dirs=$(printf '%s\n' "$listing" | awk '$1 ~ /^d/ { sub(/^\./, "", $6); sub(/\/$/, "", $6); print $6 }' |
    while read -r d; do [ -z "$d" ] || [ -e "$d" ] || echo "$d"; done)
if out=$(DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$deb" 2>&1) &&
    [ "$(dpkg-query -W -f='${Status} ${Version}' tpmd)" = "install ok installed $version" ]; then
    ok "apt-get install $deb"
else
    not_ok "apt-get install $deb" "$out"
    finish
fi
tss_gid=$(getent group tss | cut -d: -f3)
if [ -n "$tss_gid" ] && [ "$(getent passwd tpmd | cut -d: -f4)" = "$tss_gid" ]; then
    ok "postinst created the system user tpmd, primary group tss"
else
    not_ok "no user tpmd in group tss after installation" "$(getent passwd tpmd; getent group tss)"
fi
wants=/etc/systemd/system/multi-user.target.wants/tpmd.service
if [ "$(readlink "$wants")" = "$unitdir/tpmd.service" ] &&
    [ "$(systemctl is-enabled tpmd.service 2>&1)" = enabled ]; then
    ok "postinst enabled tpmd.service with deb-systemd-helper (systemd: $(systemctl is-system-running 2>/dev/null | sed -n 1p))"
else
    not_ok "tpmd.service is not enabled" "$(ls -l "$wants" 2>&1)"
fi

# --- installed units and man pages --------------------------------------------------

# verify [--user] UNIT_FILE: systemd-analyze verify, which must say nothing at all (the
# binaries are installed now, so not even that they are missing).
verify() {
    local out
    out=$(systemd-analyze verify "$@" 2>&1)
    if [ -z "$out" ]; then ok "systemd-analyze verify $*"; else not_ok "systemd-analyze verify $*" "$out"; fi
}
verify "$unitdir/tpmd.service"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$tmp/runtime}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 0700 "$XDG_RUNTIME_DIR"
for unit in tpmd.service tpmd-ssh-agent.socket tpmd-ssh-agent.service; do
    verify --user "$userunitdir/$unit"
done

pages=$(dpkg -L tpmd | grep '^/usr/share/man/man1/.*\.1\.gz$')
rendered=0
for page in $pages; do
    name=$(basename "$page" .1.gz)
    # man checks the page with groff's warnings on; any warning is a failure.
    text=$(MANWIDTH=80 man --warnings -l "$page" 2>"$tmp/man.err")
    warnings=$(cat "$tmp/man.err")
    if [ -n "$text" ] && [ -z "$warnings" ] && printf '%s\n' "$text" | grep -q "^NAME" &&
        printf '%s\n' "$text" | grep -q "^ *$name " &&
        printf '%s\n' "$text" | grep -q '^SYNOPSIS'; then
        rendered=$((rendered + 1))
    else
        not_ok "man -l $page" "$warnings"$'\n'"$(printf '%s\n' "$text" | head -n 10)"
    fi
done
if [ "$rendered" -gt 0 ] && [ "$rendered" -eq "$(printf '%s\n' "$pages" | wc -l)" ]; then
    ok "man -l renders all $rendered installed man pages without warnings"
fi

if out=$(man -w tpm-keyctl tpm-keyctl-wrap tpmd tpmd-ssh-agent tpmd-simulator 2>&1); then
    ok "man finds the pages by name (man tpm-keyctl, man tpm-keyctl-wrap...)"
else
    not_ok "man does not find the installed pages by name" "$out"
fi

# completes COMMAND WORD: what the installed bash completion offers for `COMMAND WORD<TAB>`.
completes() {
    bash -c 'source "/usr/share/bash-completion/completions/$1" &&
        f=$(complete -p "$1" | sed -n "s/.* -F \([^ ]*\) .*/\1/p") &&
        COMP_WORDS=("$1" "$2") COMP_CWORD=1 COMP_LINE="$1 $2" && COMP_POINT=${#COMP_LINE} &&
        "$f" "$1" "$2" "$1" && echo "${COMPREPLY[*]}"' completes "$1" "$2" 2>&1
}
offered=$(completes tpm-keyctl wr)$'\n'$(completes tpmd --sim)$'\n'$(completes tpmd-ssh-agent --up)
if [ "$offered" = $'wrap\n--simulator --simulator-state\n--upstream' ]; then
    ok "bash completes tpm-keyctl wr<TAB>, tpmd --sim<TAB>, tpmd-ssh-agent --up<TAB>"
else
    not_ok "bash completion offers" "$offered"
fi

# --- the installed tpmd signs with a key wrapped by the installed tpm-keyctl ---------

# A private bus that enforces what the system bus would: nobody owns or calls anything
# unless a policy allows it, and the installed policy of org.tpmd.Daemon1 is included.
mkdir -p "$tmp/bus" "$tmp/home" "$tmp/keys"
cat >"$tmp/bus/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$tmp/bus/socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>/usr/share/dbus-1/system.d/org.tpmd.Daemon1.conf</include>
</busconfig>
EOF
address=unix:path=$tmp/bus/socket
$sudo dbus-daemon --config-file="$tmp/bus/bus.conf" --nofork --nopidfile >"$tmp/bus/log" 2>&1 &
bus_pid=$!
remember "$bus_pid"

# start_tpmd: the installed binary as the installed user, on the embedded simulator
# whose state is kept in $tmp/simulator across restarts.
start_tpmd() {
    $sudo install -d -o tpmd -g tss -m 0700 "$tmp/simulator"
    $sudo setpriv --reuid=tpmd --regid=tss --init-groups --reset-env \
        /usr/bin/tpmd --simulator --simulator-state "$tmp/simulator" --address "$address" \
        >>"$tmp/tpmd.log" 2>&1 &
    tpmd_pid=$!
    remember "$tpmd_pid"
    local i
    for i in $(seq 1 200); do
        if dbus-send --bus="$address" --print-reply --dest=org.freedesktop.DBus / \
            org.freedesktop.DBus.NameHasOwner string:org.tpmd.Daemon1 2>/dev/null | grep -q 'boolean true'; then
            return 0
        fi
        kill -0 "$tpmd_pid" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}
stop_tpmd() {
    $sudo kill "$tpmd_pid" 2>/dev/null && wait "$tpmd_pid" 2>/dev/null
    tpmd_pid=""
}

keyctl() { TPMD_BUS_ADDRESS=$address HOME=$tmp/home /usr/bin/tpm-keyctl "$@"; }
# signs KEYFILE: tpm-keyctl signs a message, openssl verifies it with the original key.
signs() {
    local n=$RANDOM
    echo "message $n" >"$tmp/msg"
    keyctl sign -k "$1" -i "$tmp/msg" -o "$tmp/msg.sig" &&
        openssl dgst -sha256 -verify "$tmp/keys/work.pub" -signature "$tmp/msg.sig" "$tmp/msg"
}

if start_tpmd && [ "$(ps -o user= -p "$(pgrep -x -P "$tpmd_pid" tpmd || echo "$tpmd_pid")")" = tpmd ]; then
    ok "the installed tpmd runs as user tpmd on the simulator, owning org.tpmd.Daemon1 under the installed bus policy"
else
    not_ok "the installed tpmd did not come up as user tpmd" "$(cat "$tmp/tpmd.log" "$tmp/bus/log")"
    finish
fi
# The policy is in force: anyone else asking for the name is refused.
out=$($sudo setpriv --reuid=nobody --regid=nogroup --clear-groups dbus-send --bus="$address" --print-reply \
    --dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.RequestName \
    string:org.tpmd.Daemon1 uint32:0 2>&1)
if printf '%s\n' "$out" | grep -q 'AccessDenied'; then
    ok "the installed bus policy refuses org.tpmd.Daemon1 to any user but tpmd"
else
    not_ok "another user could ask for org.tpmd.Daemon1" "$out"
fi
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/keys/work.pem" 2>/dev/null
openssl pkey -in "$tmp/keys/work.pem" -pubout -out "$tmp/keys/work.pub"
mkdir -p "$tmp/home/.local/share/tpmd/keys"
key=$tmp/home/.local/share/tpmd/keys/work.tpm
check "the installed tpm-keyctl wraps a P-256 key" keyctl wrap "$tmp/keys/work.pem" -o "$key"
check "the installed tpmd signs with it (verified by openssl)" signs "$key"

# --- PKCS#11 through the installed p11-kit module ------------------------------------

p11() { TPMD_BUS_ADDRESS=$address HOME=$tmp/home "$@"; }
tokens=$(p11 p11tool --list-tokens 2>&1)
url=$(printf '%s\n' "$tokens" | sed -n 's/^[[:space:]]*URL: \(.*token=tpmd.*\)/\1/p' | head -n1)
if [ -n "$url" ] && printf '%s\n' "$tokens" | grep -q "Module: .*libtpmd_pkcs11.so"; then
    ok "p11tool --list-tokens (no --provider) shows the tpmd token of the installed module"
else
    not_ok "p11tool --list-tokens shows no tpmd token" "$tokens"
fi
out=$(p11 p11tool --test-sign "$url;object=work;type=private" 2>&1)
if printf '%s\n' "$out" | grep -q 'Verifying against public key in the token... ok'; then
    ok "p11tool --test-sign signs with the wrapped key through p11-kit"
else
    not_ok "p11tool --test-sign" "$out"
fi

# --- upgrade ------------------------------------------------------------------------

# The state directory systemd would have made for tpmd.service, for the purge to remove.
$sudo install -d -o tpmd -g tss -m 0700 /var/lib/tpmd
echo state | $sudo tee /var/lib/tpmd/state >/dev/null

new_version="$version+upgrade1"
deb2=$(./packaging/deb.sh --no-build --version "$new_version" 2>"$tmp/deb.log" | tail -n1)
case "$deb2" in /* | "") ;; *) deb2=./$deb2 ;; esac
if [ -f "$deb2" ] && [ ! -e "$deb" ] &&
    out=$(DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$deb2" 2>&1) &&
    [ "$(dpkg-query -W -f='${Status} ${Version}' tpmd)" = "install ok installed $new_version" ]; then
    ok "apt-get install upgrades $version to $new_version (one .deb kept)"
else
    not_ok "upgrade to $new_version" "${out:-$(tail -n 20 "$tmp/deb.log")}"
fi
if kill -0 "$tpmd_pid" 2>/dev/null && signs "$key" >/dev/null 2>&1; then
    ok "the running tpmd kept serving through the upgrade: the key signs"
else
    not_ok "tpmd stopped serving during the upgrade" "$(tail -n 20 "$tmp/tpmd.log")"
fi
if [ "$(readlink "$wants")" = "$unitdir/tpmd.service" ] && getent passwd tpmd >/dev/null; then
    ok "the upgrade kept tpmd.service enabled and the tpmd user"
else
    not_ok "the upgrade lost the unit's enablement or the user"
fi
stop_tpmd
if start_tpmd && signs "$key" >/dev/null 2>&1; then
    ok "tpmd restarted from the upgraded binary signs with the same key"
else
    not_ok "the upgraded tpmd does not sign with the key" "$(tail -n 20 "$tmp/tpmd.log")"
fi
stop_processes

# --- purge --------------------------------------------------------------------------

installed=$(dpkg -L tpmd | while read -r p; do [ -d "$p" ] || echo "$p"; done)
if out=$(DEBIAN_FRONTEND=noninteractive $sudo apt-get purge -y -q tpmd 2>&1) &&
    [ "$(dpkg-query -W -f='${db:Status-Status}' tpmd 2>/dev/null)" != installed ] &&
    ! dpkg-query -W -f='${db:Status-Status}\n' tpmd 2>/dev/null | grep -q 'config-files'; then
    ok "apt-get purge tpmd"
else
    not_ok "apt-get purge tpmd" "$out"
fi
left=""
for p in $installed $new_dirs /var/lib/tpmd "$wants" \
    /var/lib/systemd/deb-systemd-helper-enabled/tpmd.service.dsh-also \
    /var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/tpmd.service \
    /var/lib/systemd/deb-systemd-helper-masked/tpmd.service /etc/systemd/system/tpmd.service; do
    { [ -e "$p" ] || [ -L "$p" ]; } && left="$left$p"$'\n'
done
if [ -z "$left" ]; then
    ok "purge left none of the package's $(printf '%s\n' "$installed" | wc -l) files, its state directory or its unit state"
else
    not_ok "purge left files behind" "$left"
fi
if [ -f "$key" ] && getent passwd tpmd >/dev/null; then
    ok "purge kept the user's key files and the system user tpmd, as Debian does"
else
    not_ok "purge removed key files or the tpmd user"
fi

# The test's own leftovers: the user (and group) its installation made.
made=$(cat "$state")
restore "$state"
if grep -qx 'user=created' <<<"$made" && getent passwd tpmd >/dev/null; then
    not_ok "the tpmd user the installation created is still there"
elif grep -qx 'group=created' <<<"$made" && getent group tss >/dev/null; then
    not_ok "the tss group the installation created is still there"
elif grep -qx 'user=created' <<<"$made"; then
    ok "the test removed the tpmd user the installation created"
else
    ok "the tpmd user was there before the test, and stays"
fi

finish
