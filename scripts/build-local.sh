#!/usr/bin/env bash
# Builds the binaries `make run` runs: the functions, create-table, the stream runner, the
# janitor's scheduler, the replicator (`REGIONS=`) and the gateway, and no others (not the
# bench, chaos, fault proxy or tests). The whole workspace is named so that features resolve
# as for the `cargo run --bin <function>` that `cargo lambda watch` runs, which then finds
# each function already built.
set -euo pipefail
cd "$(dirname "$0")/.."
bins=(--bin create-table --bin stream-runner --bin scheduler --bin replicator --bin gateway)
for function in functions/*/; do
  bins+=(--bin "$(basename "$function")")
done
cargo build --locked --workspace "${bins[@]}"
