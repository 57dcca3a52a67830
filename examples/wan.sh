#!/usr/bin/env bash
# Chat over an emulated wide-area link: the relay in one network namespace, the clients in
# another, joined by a veth pair, with examples/wan_proxy.rs (latency, jitter, loss as a
# retransmission stall, bandwidth) between them, since tc netem is not available on every
# kernel. For each profile it measures the time until a joiner can send in a room of 10
# (`loadgen join`) and message latency p50/p99 at a human rate (`loadgen latency`).
#
# Needs root (network namespaces); without them it says so and exits 0.
# Usage: examples/wan.sh            (from anywhere; builds what it needs)
set -euo pipefail
cd "$(dirname "$0")/.."

probe=chatter-wan-probe-$$
if [[ "$(id -u)" != 0 ]] || ! ip netns add "$probe" 2>/dev/null; then
    echo "wan: cannot create network namespaces (needs root and ip netns); skipped"
    exit 0
fi
ip netns del "$probe"

cargo build --quiet --bins --example loadgen --example wan_proxy
target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target_dir/debug"

relay_ns=chatter-wan-relay-$$
clients_ns=chatter-wan-clients-$$
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$relay_ns" 2>/dev/null || true
    ip netns del "$clients_ns" 2>/dev/null || true
}
trap cleanup EXIT

ip netns add "$relay_ns"
ip netns add "$clients_ns"
ip link add "wanr$$" type veth peer name "wanc$$"
ip link set "wanr$$" netns "$relay_ns"
ip link set "wanc$$" netns "$clients_ns"
ip -n "$relay_ns" addr add 10.77.0.1/24 dev "wanr$$"
ip -n "$clients_ns" addr add 10.77.0.2/24 dev "wanc$$"
for ns in "$relay_ns" "$clients_ns"; do
    ip -n "$ns" link set lo up
done
ip -n "$relay_ns" link set "wanr$$" up
ip -n "$clients_ns" link set "wanc$$" up

code="wan check $$"
export CHATTER_ACCESS_CODE="$code"
# Every client reaches the relay through the proxy, from one address: lift the per-address
# limits; the rate limit is not what is measured either.
ip netns exec "$relay_ns" "$bin/chatter-server" --listen 10.77.0.1:9001 --no-report \
    --max-clients-per-ip 100000 --preauth-budget 100000 --rate 1000 --burst 10000 \
    2>/dev/null &
pids+=($!)
sleep 1

# name, one-way latency (ms), jitter (ms), loss probability, bandwidth (kbit/s)
profiles=(
    "rtt100 50 20 0.01 20000"
    "rtt300 150 20 0.03 5000"
)
for profile in "${profiles[@]}"; do
    read -r name latency jitter loss bandwidth <<<"$profile"
    ip netns exec "$clients_ns" "$bin/examples/wan_proxy" --listen 127.0.0.1:9002 \
        --upstream 10.77.0.1:9001 --latency-ms "$latency" --jitter-ms "$jitter" \
        --loss "$loss" --bandwidth-kbit "$bandwidth" 2>/dev/null &
    proxy=$!
    pids+=("$proxy")
    sleep 0.5
    echo "== $name: one-way ${latency} ms + 0..${jitter} ms jitter, loss $loss, ${bandwidth} kbit/s"
    ip netns exec "$clients_ns" "$bin/examples/loadgen" join --server 127.0.0.1:9002 \
        --members 10
    ip netns exec "$clients_ns" "$bin/examples/loadgen" latency --server 127.0.0.1:9002 \
        --members 10 --messages 100 --interval-us 300000
    kill "$proxy" 2>/dev/null || true
    wait "$proxy" 2>/dev/null || true
done
