#!/usr/bin/env bash
# The relay stores nothing, proven by a syscall trace: run the real `chatter-server` under
# strace through a scenario (clients connect, join, chat, quit, one drops, one gives a wrong
# access code, which blocks its address; without a report, SIGUSR1 lifts the block; then
# SIGTERM) and fail if it opens any file for writing, renames, unlinks or
# creates a directory, other than writing the abuse report through its temporary file.
# A second run with --no-report must write nothing at all.
#
# Needs strace (apt-get install strace). Run from anywhere: .ci/strace-check.sh
# KEEP_TRACE=/some/dir keeps copies of the traces for inspection.
set -euo pipefail

cd "$(dirname "$0")/.."
if ! command -v strace >/dev/null; then
    echo "strace-check: strace is not installed" >&2
    exit 1
fi

cargo build --quiet --bin chatter-server --example relay_scenario
target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
server_binary="$target_dir/debug/chatter-server"
scenario_binary="$target_dir/debug/examples/relay_scenario"

work=$(mktemp -d)
strace_pid=""
cleanup() {
    if [[ -n "$strace_pid" ]] && kill -0 "$strace_pid" 2>/dev/null; then
        kill -KILL "$strace_pid" 2>/dev/null || true
    fi
    if [[ -n "${KEEP_TRACE:-}" ]]; then
        mkdir -p "$KEEP_TRACE" && cp "$work"/*/trace* "$KEEP_TRACE"/ 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
export CHATTER_ACCESS_CODE="strace check $$"

failures=0
fail() {
    echo "strace-check: $1" >&2
    failures=$((failures + 1))
}

# The first quoted string of a line: the path of open/openat/creat/unlink/mkdir.
first_path() { sed -n 's/^[^"]*"\([^"]*\)".*/\1/p' <<<"$1"; }

# run_relay NAME [relay flags…]: runs the relay under strace in $work/NAME through the
# scenario and SIGTERM; leaves the trace in $work/NAME/trace.
run_relay() {
    local dir="$work/$1"
    shift
    mkdir -p "$dir/cwd"
    # From a directory of its own, so a stray relative path would show up there too.
    (cd "$dir/cwd" && exec strace -f -qq -s 4096 -o "$dir/trace" \
        -e trace=open,openat,creat,rename,renameat,renameat2,unlink,unlinkat,mkdir \
        "$server_binary" --listen 127.0.0.1:0 --max-access-code-failures 1 "$@") \
        2>"$dir/stderr" &
    strace_pid=$!

    local address=""
    for _ in $(seq 1 200); do
        address=$(sed -n 's/^chatter-server listening on //p' "$dir/stderr")
        [[ -n "$address" ]] && break
        sleep 0.1
    done
    if [[ -z "$address" ]]; then
        cat "$dir/stderr" >&2
        fail "the relay did not start"
        return 1
    fi

    "$scenario_binary" "$address"
    sleep 1.5 # one periodic report after the scenario, besides the one at shutdown

    # The relay is strace's only child.
    local server_pid
    server_pid=$(cat "/proc/$strace_pid/task/$strace_pid/children")
    # Lifting the blocks is a signal: no file, no socket. Only where no report is written, so
    # that the other run's last report still lists the scenario's block.
    if [[ "$lift_blocks" == yes ]]; then
        kill -USR1 "$server_pid"
        for _ in $(seq 1 50); do
            grep -q "lifted 1 block(s)" "$dir/stderr" && break
            sleep 0.1
        done
        grep -q "lifted 1 block(s)" "$dir/stderr" || fail "SIGUSR1 did not lift the scenario's block"
    fi
    kill -TERM $server_pid
    for _ in $(seq 1 100); do
        kill -0 "$strace_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$strace_pid" 2>/dev/null; then
        fail "the relay did not stop within 10 s of SIGTERM"
        return 1
    fi
    if ! wait "$strace_pid"; then
        cat "$dir/stderr" >&2
        fail "the relay failed"
    fi
    strace_pid=""
    local leftovers
    leftovers=$(find "$dir/cwd" -mindepth 1 | head -n 5)
    [[ -z "$leftovers" ]] || fail "files appeared in the relay's working directory: $leftovers"
}

# check_trace TRACE REPORT TEMPORARY: fails on any write but TEMPORARY renamed to REPORT
# (pass empty strings to allow no write at all).
check_trace() {
    local trace="$1" report="$2" temporary="$3" line call path paths
    while IFS= read -r line; do
        case "$line" in
        *"resumed>"*) continue ;; # the path and flags are on the "unfinished" line
        esac
        call=$(sed -n 's/^[0-9]*  *\([a-z0-9]*\)(.*/\1/p' <<<"$line")
        case "$call" in
        open | openat)
            if grep -Eq 'O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND' <<<"$line"; then
                path=$(first_path "$line")
                [[ -n "$temporary" && "$path" == "$temporary" ]] ||
                    fail "opened for writing: $line"
            fi
            ;;
        creat | unlink | unlinkat | mkdir) fail "not allowed: $line" ;;
        rename | renameat | renameat2)
            paths=$(grep -o '"[^"]*"' <<<"$line" | tr -d '"' | tr '\n' ' ')
            [[ -n "$report" && "$paths" == "$temporary $report " ]] || fail "renamed: $line"
            ;;
        "") ;; # signals and exits
        *) fail "unexpected trace line: $line" ;;
        esac
    done <"$trace"
}

# With the report.
report="$work/with-report/report.txt"
temporary="$work/with-report/.report.txt.tmp"
lift_blocks=no
run_relay with-report --report "$report" --report-interval 1
check_trace "$work/with-report/trace" "$report" "$temporary"
# Positive controls: the trace saw the report being written, and the report is right.
grep -q "\"$temporary\".*O_WRONLY" "$work/with-report/trace" ||
    fail "the trace never saw the report written"
grep -Eq "rename(at2?)?\(.*\"$report\"" "$work/with-report/trace" ||
    fail "the trace never saw the report renamed into place"
[[ ! -e "$temporary" ]] || fail "the temporary report was left behind"
if [[ -f "$report" ]]; then
    head -n 3 "$report" | diff - <(printf '%s\n' \
        'Logged IP addresses (packets count before they were blocked):' \
        'If needed, you can use these IPs with fail2ban.' '') >/dev/null ||
        fail "the report's header is wrong"
    grep -Eq '^127\.0\.0\.1\s+->\s+[0-9]+x packets$' "$report" ||
        fail "the report does not list the address that gave a wrong access code"
else
    fail "no report at $report"
fi

# Without the report: nothing at all.
lift_blocks=yes
run_relay no-report --no-report --report "$work/no-report/report.txt"
check_trace "$work/no-report/trace" "" ""
[[ ! -e "$work/no-report/report.txt" ]] || fail "--no-report wrote a report"

if ((failures > 0)); then
    echo "strace-check: FAILED ($failures problems); the writes traced:" >&2
    grep -Ev 'O_RDONLY' "$work"/*/trace >&2 || true
    exit 1
fi
echo "strace-check: ok (the relay wrote only its report, and nothing with --no-report)"
