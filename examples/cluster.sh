#!/usr/bin/env bash
# Relays that share rooms, measured: a real nats-server (JetStream in memory) and two real
# `chatter-server` relays on loopback, against one relay of its own, with the same load:
#   - message latency p50/p99 in a room of 10 at a human rate (`loadgen latency`), members
#     alternating between the two relays: what NATS adds;
#   - fan-out deliveries/s, 10 rooms of 10 raw clients alternating between the relays
#     (`loadgen relay`).
# Failover time is measured by tests/chatter/cluster.rs (`kill -9` of a relay).
#
# Needs nats-server 2.10+ (CHATTER_NATS_SERVER, the PATH, or /opt/chatter-nats/bin, where
# .ci/run installs it). Usage: examples/cluster.sh   (builds what it needs, release)
set -euo pipefail
cd "$(dirname "$0")/.."

nats=${CHATTER_NATS_SERVER:-}
for candidate in "$nats" nats-server /opt/chatter-nats/bin/nats-server; do
    if [[ -n "$candidate" ]] && command -v "$candidate" >/dev/null 2>&1; then
        nats=$candidate
        break
    fi
done
if ! command -v "$nats" >/dev/null 2>&1; then
    echo "cluster: no nats-server (set CHATTER_NATS_SERVER); skipped"
    exit 0
fi

cargo build --quiet --release --bins --example loadgen
bin=target/release
store=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$store" "$store".relay-*.log
}
trap cleanup EXIT

export CHATTER_ACCESS_CODE=loadgen
CHATTER_CLUSTER_KEY=$("$bin/chatter-server" --new-cluster-key)
export CHATTER_CLUSTER_KEY
limits=(--no-report --max-clients-per-ip 1000 --rate 1000000 --burst 1000000)

# Fresh relays for every run (an external relay keeps its clients' sessions for the grace
# period): NATS and two relays sharing rooms on 19201-19202, one of its own on 19203.
start_relays() {
    rm -rf "${store:?}"/* "$store".relay-*.log
    "$nats" -a 127.0.0.1 -p 14299 -js -sd "$store" >/dev/null 2>&1 &
    pids+=($!)
    sleep 0.5
    for port in 19201 19202; do
        "$bin/chatter-server" --listen "127.0.0.1:$port" "${limits[@]}" \
            --nats nats://127.0.0.1:14299 2>"$store.relay-$port.log" &
        pids+=($!)
    done
    "$bin/chatter-server" --listen 127.0.0.1:19203 "${limits[@]}" 2>/dev/null &
    pids+=($!)
    sleep 1
}
stop_relays() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
}

for round in ${ROUNDS:-1 2 3}; do
    echo "== round $round"
    start_relays
    echo "-- latency, one relay of its own"
    "$bin/examples/loadgen" latency --members 10 --messages 500 --interval-us 20000 \
        --server 127.0.0.1:19203
    echo "-- latency, two relays sharing the room through NATS"
    "$bin/examples/loadgen" latency --members 10 --messages 500 --interval-us 20000 \
        --server 127.0.0.1:19201 --also-server 127.0.0.1:19202
    echo "-- fan-out, one relay of its own"
    "$bin/examples/loadgen" relay --clients 100 --rooms 10 --messages 20000 \
        --duration-secs 10 --no-yardstick --server 127.0.0.1:19203 | grep deliveries/s
    echo "-- fan-out, two relays sharing the rooms through NATS"
    "$bin/examples/loadgen" relay --clients 100 --rooms 10 --messages 20000 \
        --duration-secs 10 --no-yardstick --server 127.0.0.1:19201 \
        --also-server 127.0.0.1:19202 | grep deliveries/s
    stop_relays
done
