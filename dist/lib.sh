# Helpers shared by dist/build.sh and dist/check.sh (sourced, not run).
# shellcheck shell=bash

say() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 2
}

# Installs Debian packages when run as root; otherwise stops with the one line that would.
need_package() {
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        die "missing: $*; install with: sudo apt-get install $*"
    fi
    say "apt-get install $*"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq "$@" >&2; then
        # A fresh machine has no package lists yet.
        if ! { apt-get update -qq >&2 && apt-get install -y -qq "$@" >&2; }; then
            die "apt-get install $* failed"
        fi
    fi
}

# need_command COMMAND PACKAGE: installs PACKAGE when COMMAND is missing.
need_command() {
    command -v "$1" >/dev/null 2>&1 || need_package "$2"
}

# The cross-compilation tools, pinned so that one commit always builds with the same linker.
readonly ZIGBUILD_VERSION=0.24.0
readonly ZIGLANG_VERSION=0.17.1
# Tools fetched by these scripts live outside the repository, shared by every checkout.
readonly TOOLS_DIR="${CHATTER_DIST_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/chatter-dist}"
readonly VENV="$TOOLS_DIR/zigbuild-$ZIGBUILD_VERSION-zig-$ZIGLANG_VERSION"

# cargo-zigbuild and zig from PyPI in a private virtualenv: no root, no system compiler, and the
# same versions on every machine.
ensure_zigbuild() {
    [[ -x "$VENV/bin/cargo-zigbuild" ]] && return 0
    need_command python3 python3
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        need_package python3-venv
    fi
    say "installing cargo-zigbuild $ZIGBUILD_VERSION and zig $ZIGLANG_VERSION into $VENV"
    rm -rf "$VENV"
    mkdir -p "$TOOLS_DIR"
    python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "cargo-zigbuild==$ZIGBUILD_VERSION" "ziglang==$ZIGLANG_VERSION" ||
        die "could not install cargo-zigbuild from PyPI (offline?); see the pip error above"
}

# Where cargo puts what it builds for the checkout at $1. `cargo metadata` knows, honouring
# CARGO_TARGET_DIR and `build.target-dir` in any cargo config (many Rust users set one
# globally), so the script never guesses `target/`.
cargo_target_dir() {
    local repo_root="$1"
    "${CARGO:-cargo}" metadata --format-version 1 --no-deps --manifest-path "$repo_root/Cargo.toml" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}
