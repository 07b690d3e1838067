#!/usr/bin/env bash
# Runs every test: installs what the end-to-end tests talk to (OpenLDAP slapd and tools), builds
# rosterd, then runs the unit and end-to-end tests of the whole workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
cargo build --locked -p roster-server --bin rosterd
cargo build --locked -p roster-tools --bin roster
cargo test --locked --workspace -- --test-threads=2
