#!/usr/bin/env bash
# The whole test suite: installs what is missing, checks formatting and lints, builds
# every binary, runs every test against fresh swtpm simulators and private D-Bus
# daemons, and checks the systemd/udev files. Last, alone, as it installs the package
# machine-wide: builds, installs, upgrades and purges the Debian package.
set -euo pipefail
cd "$(dirname "$0")/.."

./tests/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== build"
cargo build --workspace --all-targets --locked

echo "== tests"
cargo test --workspace --locked -- --test-threads=2

echo "== system files"
./tests/system-files.sh

echo "== Debian package"
./packaging/test.sh
