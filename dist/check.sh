#!/usr/bin/env bash
# Runs every release archive that can run on this machine, and inspects the ones that cannot.
#
#   dist/check.sh [DIR]        (default: dist/out, where dist/build.sh writes)
#
# 1. SHA256SUMS matches every archive, and no archive holds a file it should not.
# 2. The relay of each Linux archive is started (x86_64 natively, aarch64 under
#    qemu-user-static), and that archive's client does a real exchange in line mode with a
#    native client through it: both join a password room, each receives what the other sent,
#    and a client with the wrong room password is refused by the client under test (which is
#    the room's leader, so its own admission code answers).
# 3. chatter.exe does the same exchange under Wine, through the native relay, with a test-only
#    bcryptprimitives.dll beside it (dist/check/bcryptprimitives.c; Wine 8 lacks that DLL).
# 4. macOS binaries: format, architecture, minimum macOS, system libraries only, and an intact
#    code signature (dist/check/macho.py).
# Prints each client's cold start (the first `--version` after unpacking). Exits 1 on the first
# failure, naming it. Needs qemu-user-static and wine (installed when run as root).
set -Eeuo pipefail
trap 'printf "error: \"%s\" failed (dist/check.sh line %d)\n" "$BASH_COMMAND" "$LINENO" >&2' ERR

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly DIST_DIR="$REPO_ROOT/dist"
# shellcheck source=dist/lib.sh
source "$DIST_DIR/lib.sh"

ARCHIVE_DIR="$(cd "${1:-$DIST_DIR/out}" && pwd)"
readonly ARCHIVE_DIR
# How long one expected line may take: the first start of Wine builds its prefix first.
readonly EXPECT_SECONDS=90
readonly ACCESS_CODE="check-access-code-$$-$RANDOM"
readonly ROOM_PASSWORD="check-room-password-$RANDOM"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/chatter-check.XXXXXX")"
readonly WORK
declare -a STARTED_PIDS=()
cleanup() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    if [[ -n "${WINEPREFIX:-}" ]] && command -v wineserver >/dev/null 2>&1; then
        wineserver -k 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}

# --- archives ----------------------------------------------------------------

check_sums() {
    [[ -f "$ARCHIVE_DIR/SHA256SUMS" ]] || fail "no SHA256SUMS in $ARCHIVE_DIR"
    (cd "$ARCHIVE_DIR" && sha256sum --quiet -c SHA256SUMS) || fail "SHA256SUMS does not match"
    say "SHA256SUMS: every archive matches"
}

# Unpacks an archive into $WORK and prints the directory it holds.
unpack() {
    local archive="$1" name
    name="$(basename "$archive")"
    name="${name%.tar.gz}"
    name="${name%.zip}"
    case "$archive" in
        *.zip) unzip -q -o "$archive" -d "$WORK" ;;
        *.tar.gz) tar -xzf "$archive" -C "$WORK" ;;
    esac
    [[ -d "$WORK/$name" ]] || fail "$archive does not hold the directory $name/"
    # The test-only DLL and any client configuration must never be shipped.
    if find "$WORK/$name" -iname '*.dll' -o -name chatter.toml | grep -q .; then
        fail "$archive holds a DLL or a chatter.toml"
    fi
    echo "$WORK/$name"
}

# --- processes ---------------------------------------------------------------

# Milliseconds since the epoch.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Prints the cold start of `RUNNER... BINARY --version` in milliseconds.
cold_start() {
    local start
    start="$(now_ms)"
    "$@" --version >/dev/null || fail "$* --version failed"
    echo "$(($(now_ms) - start))"
}

# Waits until file $1 has a line containing $2; fails naming $3 otherwise.
expect_line() {
    local file="$1" needle="$2" who="$3" deadline
    deadline=$(($(date +%s) + EXPECT_SECONDS))
    until grep -qF -- "$needle" "$file" 2>/dev/null; do
        if (($(date +%s) > deadline)); then
            printf '%s printed:\n' "$who" >&2
            sed 's/^/    /' "$file" "${file%.out}.err" >&2 2>/dev/null || true
            fail "$who did not print \"$needle\" within ${EXPECT_SECONDS}s"
        fi
        sleep 0.2
    done
}

# Starts a relay (RUNNER... BINARY) on a free loopback port, which it sets in RELAY_PORT.
RELAY_PORT=""
start_relay() {
    local log="$WORK/relay-$RANDOM.err"
    CHATTER_ACCESS_CODE="$ACCESS_CODE" "$@" --listen 127.0.0.1:0 --no-report \
        </dev/null >/dev/null 2>"$log" &
    STARTED_PIDS+=("$!")
    expect_line "$log" "listening on" "the relay ($*)"
    RELAY_PORT="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -n 1)"
    [[ -n "$RELAY_PORT" ]] || fail "the relay did not say its port"
}

# Client processes by name: their stdin is a FIFO this script holds open.
declare -A CLIENT_FD=() CLIENT_PID=()

start_client() {
    local name="$1" port="$2" password="$3"
    shift 3
    mkfifo "$WORK/$name.in"
    mkdir -p "$WORK/home-$name"
    (
        # The other clients' stdin: a copy held open here would hide their end of input.
        local other
        for other in "${CLIENT_FD[@]}"; do exec {other}>&-; done
        export HOME="$WORK/home-$name" XDG_CONFIG_HOME="$WORK/home-$name"
        export XDG_DATA_HOME="$WORK/home-$name"
        CHATTER_ACCESS_CODE="$ACCESS_CODE" CHATTER_ROOM_PASSWORD="$password" \
            exec "$@" --nick "$name" "127.0.0.1:$port" \
            <"$WORK/$name.in" >"$WORK/$name.out" 2>"$WORK/$name.err"
    ) &
    CLIENT_PID[$name]=$!
    STARTED_PIDS+=("$!")
    local fd
    exec {fd}>"$WORK/$name.in"
    CLIENT_FD[$name]=$fd
}

send() { printf '%s\n' "$2" >&"${CLIENT_FD[$1]}"; }
expect() { expect_line "$WORK/$1.out" "$2" "$1"; }

# Closes a client's stdin and waits for it to quit cleanly.
finish() {
    local name="$1" deadline fd="${CLIENT_FD[$1]}"
    exec {fd}>&-
    deadline=$(($(date +%s) + EXPECT_SECONDS))
    while kill -0 "${CLIENT_PID[$name]}" 2>/dev/null; do
        (($(date +%s) <= deadline)) || fail "$name did not quit at the end of its input"
        sleep 0.2
    done
    wait "${CLIENT_PID[$name]}" || fail "$name exited with status $?"
}

# The exchange: $1 label, $2 relay port, then the command of the client under test. Its peers
# are the native client of this machine's x86_64 archive.
exchange() {
    local label="$1" port="$2"
    shift 2
    local room="check-$label" probe="probe-$label" peer="peer-$label" intruder="intruder-$label"
    start_client "$probe" "$port" "$ROOM_PASSWORD" "$@"
    start_client "$peer" "$port" "$ROOM_PASSWORD" "$NATIVE_CHATTER"
    send "$probe" "/join $room"
    expect "$probe" "you joined $room"
    send "$peer" "/join $room"
    expect "$peer" "you joined $room"
    expect "$probe" "$peer joined $room"
    send "$probe" "hello from $label"
    expect "$peer" "$probe: hello from $label"
    send "$peer" "hello back to $label"
    expect "$probe" "$peer: hello back to $label"
    start_client "$intruder" "$port" "not-$ROOM_PASSWORD" "$NATIVE_CHATTER"
    send "$intruder" "/join $room"
    expect "$intruder" "wrong password for room $room"
    finish "$intruder"
    finish "$probe"
    expect "$peer" "$probe left $room"
    finish "$peer"
    say "$label: joined a password room, sent and received, refused a wrong password"
}

# --- per platform ------------------------------------------------------------

NATIVE_CHATTER=""
NATIVE_RELAY=""
declare -a REPORT=()

check_linux() {
    local archive="$1" arch="$2" dir ms
    dir="$(unpack "$archive")"
    local -a runner=()
    if [[ "$arch" == aarch64 ]]; then
        need_command qemu-aarch64-static qemu-user-static
        runner=(qemu-aarch64-static)
    fi
    ms="$(cold_start "${runner[@]}" "$dir/chatter")"
    start_relay "${runner[@]}" "$dir/chatter-server"
    exchange "linux-$arch" "$RELAY_PORT" "${runner[@]}" "$dir/chatter"
    REPORT+=("$(basename "$archive"): exchange passed, chatter cold start ${ms} ms${runner[*]:+ under ${runner[*]}}")
}

check_windows() {
    local archive="$1" dir ms
    dir="$(unpack "$archive")"
    need_command wine wine
    command -v wine64 >/dev/null 2>&1 || [[ -x /usr/lib/wine/wine64 ]] || need_package wine64
    ensure_zigbuild
    # Built into the unpacked directory of this check only, never into an archive.
    "$VENV/bin/python" -m ziglang cc -target x86_64-windows-gnu -shared -O2 \
        -o "$dir/bcryptprimitives.dll" "$DIST_DIR/check/bcryptprimitives.c" -ladvapi32
    export WINEPREFIX="$WORK/wineprefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
    # One persistent wineserver for the whole check, started here so that no command
    # substitution below ends up waiting on a daemon that inherited its output.
    mkdir -p "$WINEPREFIX"
    wineserver -p </dev/null >/dev/null 2>&1 || fail "wineserver did not start"
    local start
    start="$(now_ms)"
    wineboot --init </dev/null >/dev/null 2>&1 || fail "wineboot could not create a Wine prefix"
    say "Wine prefix ready in $(($(now_ms) - start)) ms"
    ms="$(cold_start wine "$dir/chatter.exe")"
    start_relay "$NATIVE_RELAY"
    exchange windows "$RELAY_PORT" wine "$dir/chatter.exe"
    REPORT+=("$(basename "$archive"): exchange passed under $(wine --version), chatter.exe cold start ${ms} ms (Wine included)")
}

check_macos() {
    local archive="$1" arch="$2" min="$3" dir findings
    dir="$(unpack "$archive")"
    need_command python3 python3
    findings="$(python3 "$DIST_DIR/check/macho.py" "$dir/chatter" "$arch" "$min")" || {
        printf '%s\n' "$findings" >&2
        fail "$(basename "$archive"): chatter is not a runnable macOS $arch program"
    }
    printf '%s\n' "$findings" | sed 's/^/    /' >&2
    REPORT+=("$(basename "$archive"): Mach-O $arch, macOS $min+, system libraries only, $(grep '^code signature' <<<"$findings") (not run: no Mac)")
}

main() {
    [[ "$(uname -m)" == x86_64 ]] || die "dist/check.sh runs on an x86_64 Linux machine"
    check_sums
    shopt -s nullglob
    local -a archives=("$ARCHIVE_DIR"/chatter-*.tar.gz "$ARCHIVE_DIR"/chatter-*.zip)
    local native
    native="$(printf '%s\n' "${archives[@]}" | grep -- '-x86_64-unknown-linux-musl\.tar\.gz$')" ||
        fail "the x86_64-unknown-linux-musl archive is needed: its relay and client are the peers"
    local native_dir
    native_dir="$(unpack "$native")"
    NATIVE_CHATTER="$native_dir/chatter"
    NATIVE_RELAY="$native_dir/chatter-server"
    local archive
    for archive in "${archives[@]}"; do
        say "checking $(basename "$archive")"
        case "$archive" in
            *-x86_64-unknown-linux-musl.tar.gz) check_linux "$archive" x86_64 ;;
            *-aarch64-unknown-linux-musl.tar.gz) check_linux "$archive" aarch64 ;;
            *-x86_64-pc-windows-gnu.zip) check_windows "$archive" ;;
            *-aarch64-apple-darwin.tar.gz) check_macos "$archive" arm64 11.0 ;;
            *-x86_64-apple-darwin.tar.gz) check_macos "$archive" x86_64 10.12 ;;
            *) fail "no check for $(basename "$archive")" ;;
        esac
    done
    printf '\nChecked in %s:\n' "$ARCHIVE_DIR" >&2
    printf '  %s\n' "${REPORT[@]}" >&2
}

main "$@"
