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
