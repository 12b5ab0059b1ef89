#!/usr/bin/env bash
# Runs every test binary of the workspace ROUNDS times (default 3) beside LOAD busy loops
# (default 1), to find tests that fail only on a loaded machine before CI does. Not part of
# CI. Each binary runs from its package's folder, as `cargo test` runs it; outputs go to
# target/stress/, failures are listed at the end; the binaries' copies (several GiB) are removed
# when it ends. Needs python3 (to read cargo's JSON).
#
#   scripts/stress-tests.sh [ROUNDS] [LOAD]
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rounds=${1:-3}
load=${2:-1}
out=target/stress
rm -rf "$out" && mkdir -p "$out/bin"
cargo test --workspace --no-run --message-format=json 2>/dev/null | python3 -c '
import json, os, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"], os.path.dirname(m["manifest_path"]), m["target"]["name"])
' > "$out/list"
# Copies, so that a build meanwhile does not change what runs.
i=0
while read -r exe dir name; do
  i=$((i + 1))
  cp "$exe" "$out/bin/$i-$name"
  echo "$i-$name $dir" >> "$out/bins"
done < "$out/list"
busy=()
for _ in $(seq 1 "$load"); do
  sh -c 'while :; do :; done' &
  busy+=($!)
done
trap 'kill "${busy[@]}" 2>/dev/null; rm -rf "$root/$out/bin"' EXIT
failed=0
for r in $(seq 1 "$rounds"); do
  while read -r bin dir; do
    log="$out/$r-$bin.log"
    if (cd "$dir" && CARGO_MANIFEST_DIR="$dir" timeout 900 "$root/$out/bin/$bin" > "$root/$log" 2>&1); then
      :
    else
      failed=$((failed + 1))
      echo "round $r: $bin failed: $(grep -E '^test .* FAILED' "$log" | head -3 | tr '\n' ' ') ($log)"
    fi
  done < "$out/bins"
done
echo "$rounds round(s), $(wc -l < "$out/bins") binaries each: $failed failure(s)"
[ "$failed" -eq 0 ]
