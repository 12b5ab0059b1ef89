#!/usr/bin/env bash
# Installs the Garage S3 server (https://garagehq.deuxfleurs.fr) that the `ese-garage` test
# harness runs as a 3-node cluster. Garage is AGPL: it is only ever run as a separate test
# server process, never linked into anything of ours.
#
# Usage: scripts/install-garage.sh [ROOT]
#   ROOT defaults to <repo>/target/garage; the binary lands in ROOT/bin/garage.
# Env:   GARAGE_VERSION (default 2.5.0), CARGO (default: cargo on PATH).
#
# Idempotent: when ROOT/bin/garage already reports GARAGE_VERSION it exits at once, so CI and
# the harness can call it unconditionally. A fresh build takes about 9 minutes on 2 cores.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=${1:-$repo/target/garage}
version=${GARAGE_VERSION:-2.5.0}
cargo=${CARGO:-cargo}
bin=$root/bin/garage

if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qF "$version"; then
  echo "garage $version already installed at $bin"
  exit 0
fi

mkdir -p "$root"
# A CARGO_TARGET_DIR inherited from a running `cargo test` would point this build at the
# workspace's target dir, whose lock that cargo process may hold: build in cargo install's own
# temporary dir instead. --locked pins Garage's dependencies to its published Cargo.lock so the
# build is reproducible and does not break when a dependency releases.
env -u CARGO_TARGET_DIR "$cargo" install garage --version "$version" --locked --root "$root"

"$bin" --version
