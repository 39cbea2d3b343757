#!/usr/bin/env bash
# Try tpmd without a TPM: installs what is missing, builds, and runs tpmd on the
# embedded swtpm simulator on a private session bus, then shows it working with
# tpm-keyctl. The simulator's state persists in $XDG_STATE_HOME/tpmd/simulator, so keys
# wrapped today still work tomorrow.
set -euo pipefail
cd "$(dirname "$0")/.."

./tests/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --workspace --bins --locked
bin="$PWD/target/release"

# A session bus of our own if there is none (ssh sessions, containers).
if [ -z "${DBUS_SESSION_BUS_ADDRESS:-}" ]; then
  eval "$(dbus-launch --sh-syntax 2>/dev/null || true)"
  if [ -z "${DBUS_SESSION_BUS_ADDRESS:-}" ]; then
    sock="${XDG_RUNTIME_DIR:-/tmp}/tpmd-try-bus"
    rm -f "$sock"
    dbus-daemon --session --address="unix:path=$sock" --fork --nopidfile >/dev/null
    export DBUS_SESSION_BUS_ADDRESS="unix:path=$sock"
  fi
fi

log="${XDG_RUNTIME_DIR:-/tmp}/tpmd-try.log"
nohup "$bin/tpmd" --user --simulator >"$log" 2>&1 &
tpmd_pid=$!
for _ in $(seq 100); do
  "$bin/tpm-keyctl" --user info >/dev/null 2>&1 && break
  kill -0 "$tpmd_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done

"$bin/tpm-keyctl" --user info
demo="$(mktemp -d)"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$demo/id_demo" 2>/dev/null
"$bin/tpm-keyctl" --user wrap "$demo/id_demo"
echo "hello" | "$bin/tpm-keyctl" --user sign -k "$demo/id_demo.tpm" -o "$demo/hello.sig"
"$bin/tpm-keyctl" --user pubkey "$demo/id_demo.tpm" > "$demo/id_demo.pub.pem"
echo "hello" | openssl dgst -sha256 -verify "$demo/id_demo.pub.pem" -signature "$demo/hello.sig"

cat <<TXT

tpmd is running on the simulator (pid $tpmd_pid, log $log) on this session bus:
  export DBUS_SESSION_BUS_ADDRESS='$DBUS_SESSION_BUS_ADDRESS'
  $bin/tpm-keyctl --user wrap ~/.ssh/id_rsa
Stop it with: kill $tpmd_pid
TXT
