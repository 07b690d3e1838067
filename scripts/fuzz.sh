#!/usr/bin/env bash
# Runs every fuzz target for a while (default 20 s each; FUZZ_SECONDS to change), with the
# checked-in corpus and regression inputs as seeds. Installs cargo-fuzz when missing.
#
#   bash scripts/fuzz.sh [TARGET...]        # all targets when none is named
#
# libFuzzer runs without a sanitizer (`--sanitizer none`) so that the stable toolchain builds
# it; the code has no `unsafe`, so what a sanitizer adds is found as panics anyway. A crash
# leaves its input in fuzz/artifacts/<target>/; add it under fuzz/regressions/<target>/ and the
# next run replays it first.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-20}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(message session filter dn ldif)
fi
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  seeds=("fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && seeds+=("fuzz/regressions/$t")
  echo "fuzz: $t for ${SECONDS_EACH}s"
  (cd fuzz && cargo fuzz run --sanitizer none "$t" "${seeds[@]/#fuzz\//}" -- \
      -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 12)
done
