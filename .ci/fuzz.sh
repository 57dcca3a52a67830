#!/usr/bin/env bash
# Runs every fuzz target (fuzz/, cargo-fuzz on nightly) for SECONDS each (default 15),
# starting from seeds the real code writes (examples/fuzz_seeds.rs). Prints each target's
# executions and their total; exits non-zero on the first crash (the input is kept in
# fuzz/artifacts/TARGET/). `.ci/run` runs it briefly; for the long campaign see fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-15}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz: no nightly toolchain (rustup toolchain install nightly); skipped" >&2
    exit 0
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cargo run --quiet --example fuzz_seeds -- fuzz/corpus
cd fuzz
cargo +nightly fuzz build
total=0
for target in $(cargo +nightly fuzz list); do
    mkdir -p "corpus/$target"
    log=$(mktemp)
    if ! cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "fuzz: $target crashed; the input is in fuzz/artifacts/$target/" >&2
        rm -f "$log"
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rm -f "$log"
    echo "fuzz: $target: ${runs:-0} executions in ${seconds}s"
    total=$((total + ${runs:-0}))
done
echo "fuzz: total: $total executions, no crash"
