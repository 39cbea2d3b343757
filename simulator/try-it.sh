#!/usr/bin/env bash
# Try tpmd without a TPM: installs what is missing, builds, and runs tpmd on the
# embedded swtpm simulator on a private session bus with tpmd-ssh-agent beside it, then
# shows a wrapped key working through tpm-keyctl, ssh-add/ssh-keygen and the PKCS#11
# module. The simulator's state persists in $XDG_STATE_HOME/tpmd/simulator, so keys
# wrapped today still work tomorrow. Pass --tpm12 to try a TPM 1.2 instead; other
# options go to tpmd, e.g. `--kernel-rm --latency discrete` for /dev/tpmrm0 on a
# discrete TPM (slow on purpose). The simulator is reachable by your user only and
# stops with tpmd.
set -euo pipefail
cd "$(dirname "$0")/.."

./tests/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --workspace --locked
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

tpmd_opts=()
key_alg=(EC -pkeyopt ec_paramgen_curve:P-256)
for opt in "$@"; do
  if [ "$opt" = "--tpm12" ]; then
    key_alg=(RSA -pkeyopt rsa_keygen_bits:2048)
  fi
  tpmd_opts+=("$opt")
done

log="${XDG_RUNTIME_DIR:-/tmp}/tpmd-try.log"
nohup "$bin/tpmd" --user --simulator "${tpmd_opts[@]}" >"$log" 2>&1 &
tpmd_pid=$!
for _ in $(seq 100); do
  "$bin/tpm-keyctl" --user info >/dev/null 2>&1 && break
  kill -0 "$tpmd_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done

"$bin/tpm-keyctl" --user info
demo="$(mktemp -d)"
openssl genpkey -algorithm "${key_alg[@]}" -out "$demo/id_demo" 2>/dev/null
"$bin/tpm-keyctl" --user wrap "$demo/id_demo"
echo "hello" | "$bin/tpm-keyctl" --user sign -k "$demo/id_demo.tpm" -o "$demo/hello.sig"
"$bin/tpm-keyctl" --user pubkey "$demo/id_demo.tpm" > "$demo/id_demo.pub.pem"
echo "hello" | openssl dgst -sha256 -verify "$demo/id_demo.pub.pem" -signature "$demo/hello.sig"

# ssh: the agent serves the wrapped key (plus any TPM key files in ~/.ssh).
agent_out="$("$bin/tpmd-ssh-agent" --user --key-dir "$demo" -a "$demo/agent.sock")"
eval "$agent_out"
agent_pid="$(pgrep -f "tpmd-ssh-agent .*$demo/agent.sock" | head -n1 || true)"
echo "ssh-add -l through tpmd-ssh-agent:"
ssh-add -l
echo "hello" > "$demo/hello.txt"
ssh-keygen -q -Y sign -n file -f "$demo/id_demo.pub" "$demo/hello.txt"
echo "signer $(cat "$demo/id_demo.pub")" > "$demo/allowed"
ssh-keygen -Y verify -n file -I signer -f "$demo/allowed" -s "$demo/hello.txt.sig" < "$demo/hello.txt"

# PKCS#11: the same key as a token object.
echo "the key through libtpmd_pkcs11.so:"
TPMD_BUS_ADDRESS="$DBUS_SESSION_BUS_ADDRESS" TPMD_PKCS11_KEYS="$demo" \
  pkcs11-tool --module "$bin/libtpmd_pkcs11.so" --list-objects

cat <<TXT

tpmd is running on the simulator (pid $tpmd_pid, log $log) on this session bus, and
tpmd-ssh-agent (pid ${agent_pid:-?}) on $SSH_AUTH_SOCK:
  export DBUS_SESSION_BUS_ADDRESS='$DBUS_SESSION_BUS_ADDRESS'
  export SSH_AUTH_SOCK='$SSH_AUTH_SOCK'
  $bin/tpm-keyctl --user wrap ~/.ssh/id_rsa      # then ssh uses ~/.ssh/id_rsa.tpm through the agent
  pkcs11-tool --module $bin/libtpmd_pkcs11.so --list-objects
Stop them with: kill $tpmd_pid ${agent_pid:-}
TXT
