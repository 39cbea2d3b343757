#!/usr/bin/env bash
# Runs OpenSSH's regress scripts (from the source fetch-source.sh unpacks) against the
# installed OpenSSH binaries, with TEST_SSH_SSHAGENT pointing at the agent to test.
#
#   run.sh [--agent PROGRAM] [--source DIR] [--work DIR] TEST...
#
# PROGRAM defaults to the installed ssh-agent; TEST is a regress script's name without
# .sh (agent, agent-restrict...). Prints one line per test: `PASS name`, `FAIL name` or
# `SKIP name: reason` (the script's own words), and exits 1 if any failed. Each test's
# logs stay in WORK/NAME/ (regress.log, failed-*.log).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

agent=$(command -v ssh-agent || true)
source_dir=""
work=""
while [ $# -gt 0 ]; do
  case "$1" in
    --agent) agent=$2; shift 2 ;;
    --source) source_dir=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --) shift; break ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "run.sh: name the regress tests to run (agent, agent-restrict, ...)" >&2; exit 2; }
[ -n "$agent" ] && [ -x "$agent" ] || { echo "run.sh: the agent to test ($agent) is not an executable" >&2; exit 2; }
case "$agent" in
  */*) agent="$(cd "$(dirname "$agent")" && pwd)/$(basename "$agent")" ;;
esac
[ -n "$source_dir" ] || source_dir=$("$here/fetch-source.sh")
source_dir=$(cd "$source_dir" && pwd)
regress="$source_dir/regress"
[ -f "$regress/test-exec.sh" ] || { echo "run.sh: $regress/test-exec.sh is missing" >&2; exit 2; }
[ -n "$work" ] || work=$(mktemp -d /tmp/openssh-regress-XXXXXX)
mkdir -p "$work"
work=$(cd "$work" && pwd)

bin() { command -v "$1" 2>/dev/null || echo "/usr/bin/$1"; }
export TEST_SHELL=sh
export TEST_SSH_SSH=$(bin ssh) TEST_SSH_SSHD=/usr/sbin/sshd TEST_SSH_SSHAGENT=$agent
export TEST_SSH_SSHADD=$(bin ssh-add) TEST_SSH_SSHKEYGEN=$(bin ssh-keygen)
export TEST_SSH_SSHKEYSCAN=$(bin ssh-keyscan) TEST_SSH_SFTP=$(bin sftp) TEST_SSH_SCP=$(bin scp)
export TEST_SSH_SFTPSERVER=/usr/lib/openssh/sftp-server
export TEST_SSH_PKCS11_HELPER=/usr/lib/openssh/ssh-pkcs11-helper
export TEST_SSH_SK_HELPER=/usr/lib/openssh/ssh-sk-helper
export TEST_SSH_UNSAFE_PERMISSIONS=1
# The tests talk to sshd through ProxyCommand (sshd -i); a port is still configured.
export TEST_SSH_PORT=${TEST_SSH_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 4242)}
unset SSH_AUTH_SOCK SSH_AGENT_PID DISPLAY SSH_ASKPASS

failed=0
for test in "$@"; do
  script="$regress/$test.sh"
  if [ ! -f "$script" ]; then
    echo "FAIL $test: no such regress script $script"
    failed=1
    continue
  fi
  obj="$work/$test"
  rm -rf "$obj" && mkdir -p "$obj" && chmod 755 "$obj"
  set +e
  output=$(cd "$obj" && sh "$regress/test-exec.sh" "$obj" "$script" </dev/null 2>&1)
  status=$?
  set -e
  printf '%s\n' "$output" >"$obj/output.log"
  reason=$(printf '%s\n' "$output" | grep -i -m1 'skipped' || true)
  if [ $status -eq 0 ] && [ -n "$reason" ]; then
    echo "SKIP $test: $reason"
  elif [ $status -eq 0 ]; then
    echo "PASS $test"
  else
    # The script's own failure lines, else the end of its output.
    why=$(grep -h -m3 -E '^(FAIL|FATAL):' "$obj/failed-regress.log" 2>/dev/null | tr '\n' ';' || true)
    [ -n "$why" ] || why=$(printf '%s\n' "$output" | grep -v '^failed ' | tail -n3 | tr '\n' ';')
    echo "FAIL $test: $why (logs in $obj)"
    failed=1
  fi
done
exit $failed
