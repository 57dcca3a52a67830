#!/usr/bin/env bash
# Builds the release archives of CLI Chatter, and preconfigured client bundles.
#
#   dist/build.sh [build] [--target TRIPLE]... [--static-glibc]
#   dist/build.sh bundle --server HOST:PORT [--name NAME] [--nick NICK] [--color true|false]
#                        [--target TRIPLE]...
#
# Everything is written to dist/out/ (gitignored). See dist/README.md.
set -Eeuo pipefail
# set -e alone exits silently; say which command stopped the script.
trap 'printf "error: \"%s\" failed (dist/build.sh line %d)\n" "$BASH_COMMAND" "$LINENO" >&2' ERR

readonly DEFAULT_TARGETS=(
    x86_64-unknown-linux-musl
    aarch64-unknown-linux-musl
    x86_64-pc-windows-gnu
)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly DIST_DIR="$REPO_ROOT/dist"
readonly OUT_DIR="$DIST_DIR/out"

say() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 2
}

usage() {
    cat <<'EOF'
Usage:
  dist/build.sh [build] [--target TRIPLE]... [--static-glibc]
      Release archives of chatter and chatter-server for every target (default:
      x86_64-unknown-linux-musl, aarch64-unknown-linux-musl, x86_64-pc-windows-gnu;
      the Windows archive holds only chatter.exe, the relay is Unix-only).
      Writes dist/out/chatter-<version>-<target>.tar.gz (.zip for Windows) and
      dist/out/SHA256SUMS.

      --static-glibc   build the Linux targets as *-unknown-linux-gnu with
                       -C target-feature=+crt-static instead of musl (this is
                       also the automatic fallback when a musl target cannot
                       be installed); see dist/README.md for the NSS caveat.

  dist/build.sh bundle --server HOST:PORT [--name NAME] [--nick NICK]
                       [--color true|false] [--target TRIPLE]...
      Client-only archives with a chatter.toml beside the binary that pins the
      relay, for handing to a friend. Writes
      dist/out/bundle-<name>/chatter-<version>-<name>-<target>.{tar.gz,zip}
      and a SHA256SUMS there. The access code is never put in a bundle: give
      it to your friend by another channel.

Environment: CARGO (default cargo). Linkers are taken from PATH:
  aarch64-linux-gnu-gcc   (Debian: apt-get install gcc-aarch64-linux-gnu)
  x86_64-w64-mingw32-gcc  (Debian: apt-get install gcc-mingw-w64-x86-64)
EOF
}

# --- project metadata -------------------------------------------------------

package_version() {
    # The first `version = "..."` in Cargo.toml is the [package] one.
    sed -n 's/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$REPO_ROOT/Cargo.toml" | head -n 1
}

VERSION="$(package_version)"
[[ -n "$VERSION" ]] || die "could not read the package version from Cargo.toml"
readonly VERSION

# Archives get the commit time as mtime, so rebuilding one commit gives identical archives.
if [[ -z "${SOURCE_DATE_EPOCH:-}" ]]; then
    SOURCE_DATE_EPOCH="$(git -C "$REPO_ROOT" log -1 --format=%ct 2>/dev/null || date +%s)"
fi
export SOURCE_DATE_EPOCH

CARGO="${CARGO:-cargo}"

# --- targets -----------------------------------------------------------------

# The C compiler that links (and compiles any C code) for a target, or nothing for the host.
linker_for() {
    case "$1" in
        aarch64-unknown-linux-musl | aarch64-unknown-linux-gnu) echo aarch64-linux-gnu-gcc ;;
        x86_64-pc-windows-gnu) echo x86_64-w64-mingw32-gcc ;;
        *) echo "" ;;
    esac
}

linker_package() {
    case "$1" in
        aarch64-linux-gnu-gcc) echo gcc-aarch64-linux-gnu ;;
        x86_64-w64-mingw32-gcc) echo gcc-mingw-w64-x86-64 ;;
        *) echo "$1" ;;
    esac
}

# Binaries to build for a target in release mode: the relay is Unix-only.
bins_for() {
    local target="$1" only_client="$2"
    if [[ "$only_client" == yes || "$target" == *windows* ]]; then
        echo chatter
    else
        echo "chatter chatter-server"
    fi
}

exe_suffix() { [[ "$1" == *windows* ]] && echo .exe || echo ""; }

# Installs a rustup target if it is missing. Returns non-zero (after saying why) when it cannot.
ensure_rust_target() {
    local target="$1"
    if ! command -v rustup >/dev/null 2>&1; then
        # Without rustup the toolchain may still have the target (e.g. a distro rustc).
        if rustc --print target-libdir --target "$target" >/dev/null 2>&1 &&
            [[ -d "$(rustc --print target-libdir --target "$target")" ]]; then
            return 0
        fi
        warn "rustup is not installed and rustc has no standard library for $target"
        return 1
    fi
    if rustup target list --installed | grep -qx "$target"; then
        return 0
    fi
    say "adding rustup target $target"
    if ! rustup target add "$target" >&2; then
        warn "could not add the rustup target $target (offline?); run: rustup target add $target"
        return 1
    fi
}

ensure_linker() {
    local target="$1" linker
    linker="$(linker_for "$target")"
    [[ -z "$linker" ]] && return 0
    if ! command -v "$linker" >/dev/null 2>&1; then
        warn "$target needs the linker $linker; on Debian: apt-get install $(linker_package "$linker")"
        return 1
    fi
}

# Fails unless every Linux binary is statically linked (no PT_INTERP, no DT_NEEDED).
check_static() {
    local binary="$1"
    if readelf -lW "$binary" | grep -q 'INTERP'; then
        warn "$binary asks for a dynamic loader: it is not static"
        return 1
    fi
    if readelf -dW "$binary" 2>/dev/null | grep -q 'NEEDED'; then
        warn "$binary needs shared libraries: it is not static"
        return 1
    fi
}

# Builds the given binaries for one rust target, with the environment that target needs.
# $1 rust target, $2 "glibc-static" or "", rest: binary names.
cargo_build() {
    local target="$1" flavour="$2"
    shift 2
    local env_prefix linker
    env_prefix="$(echo "$target" | tr '[:lower:]-' '[:upper:]_')"
    linker="$(linker_for "$target")"
    local -a env_vars=()
    local -a bin_args=()
    local bin
    for bin in "$@"; do bin_args+=(--bin "$bin"); done
    if [[ -n "$linker" ]]; then
        env_vars+=("CARGO_TARGET_${env_prefix}_LINKER=$linker" "CC_${target//-/_}=$linker")
    elif [[ "$target" == x86_64-unknown-linux-musl ]] && command -v musl-gcc >/dev/null 2>&1; then
        # ring compiles C and assembly (the transport's AES-GCM); with musl-gcc it sees musl's
        # headers. The host gcc builds it too, so this is a preference, not a requirement.
        env_vars+=("CC_${target//-/_}=musl-gcc")
    fi
    if [[ "$flavour" == glibc-static ]]; then
        # With an explicit --target, these flags reach only the target, not build scripts.
        env_vars+=("CARGO_TARGET_${env_prefix}_RUSTFLAGS=-C target-feature=+crt-static")
    fi
    say "cargo build --release --locked --target $target ${bin_args[*]}${env_vars[*]:+ (with ${env_vars[*]})}"
    env "${env_vars[@]}" "$CARGO" build --manifest-path "$REPO_ROOT/Cargo.toml" \
        --release --locked --target "$target" "${bin_args[@]}"
}

# Resolves what to actually build for a requested target: prints "rust_target flavour label".
# A musl target that cannot be installed falls back to static glibc when possible.
plan_target() {
    local requested="$1" force_glibc="$2"
    local gnu="${requested%-musl}-gnu"
    if [[ "$requested" == *-linux-musl && "$force_glibc" == yes ]]; then
        if ensure_rust_target "$gnu" && ensure_linker "$gnu"; then
            echo "$gnu glibc-static ${gnu}-static"
            return 0
        fi
        return 1
    fi
    if ensure_rust_target "$requested" && ensure_linker "$requested"; then
        echo "$requested - $requested"
        return 0
    fi
    if [[ "$requested" == *-linux-musl ]]; then
        warn "falling back to $gnu with +crt-static for $requested (see the NSS caveat in dist/README.md)"
        if ensure_rust_target "$gnu" && ensure_linker "$gnu"; then
            echo "$gnu glibc-static ${gnu}-static"
            return 0
        fi
    fi
    return 1
}

# --- archives ----------------------------------------------------------------

# Packs directory $2 (under $1) into $3 (.tar.gz or .zip), reproducibly.
pack() {
    local parent="$1" name="$2" archive="$3"
    find "$parent/$name" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    rm -f "$archive"
    case "$archive" in
        *.zip)
            (cd "$parent" && find "$name" -print | LC_ALL=C sort | zip -X -q -@ "$archive")
            ;;
        *.tar.gz)
            tar -C "$parent" --sort=name --owner=0 --group=0 --numeric-owner \
                --mtime="@$SOURCE_DATE_EPOCH" -cf - "$name" | gzip -9 -n >"$archive"
            ;;
    esac
}

archive_ext() {
    if [[ "$1" == *windows* ]] && command -v zip >/dev/null 2>&1; then
        echo zip
    else
        echo tar.gz
    fi
}

write_checksums() {
    local dir="$1"
    (
        cd "$dir"
        shopt -s nullglob
        local -a archives=(chatter-*.tar.gz chatter-*.zip)
        if ((${#archives[@]} > 0)); then
            sha256sum "${archives[@]}" >SHA256SUMS
        else
            rm -f SHA256SUMS
        fi
    )
}

# Builds one requested target and stages its files. Prints the label and rust target it used.
# $1 requested target, $2 force glibc (yes/no), $3 client only (yes/no), $4 staging dir to fill.
build_and_stage() {
    local requested="$1" force_glibc="$2" only_client="$3" stage="$4"
    local plan rust_target flavour label
    plan="$(plan_target "$requested" "$force_glibc")" || return 1
    read -r rust_target flavour label <<<"$plan"
    [[ "$flavour" == - ]] && flavour=""
    local -a bins
    read -r -a bins <<<"$(bins_for "$rust_target" "$only_client")"
    cargo_build "$rust_target" "$flavour" "${bins[@]}" || {
        warn "cargo build failed for $rust_target"
        return 1
    }
    mkdir -p "$stage" || return 1
    local bin path suffix
    suffix="$(exe_suffix "$rust_target")"
    for bin in "${bins[@]}"; do
        path="$REPO_ROOT/target/$rust_target/release/$bin$suffix"
        [[ -f "$path" ]] || {
            warn "cargo did not produce $path"
            return 1
        }
        if [[ "$rust_target" == *linux* ]]; then
            check_static "$path" || return 1
        fi
        install -m 0755 "$path" "$stage/$bin$suffix" || return 1
    done
    echo "$label $rust_target"
}

# A scratch directory under dist/out/, removed when the script exits.
STAGE_DIR=""
make_stage_dir() {
    STAGE_DIR="$(mktemp -d "$OUT_DIR/.stage.XXXXXX")"
    trap 'rm -rf "$STAGE_DIR"' EXIT
}

# --- commands ----------------------------------------------------------------

cmd_build() {
    local force_glibc=no
    local -a targets=()
    while (($# > 0)); do
        case "$1" in
            --target) targets+=("${2:?--target needs a value}") && shift 2 ;;
            --static-glibc) force_glibc=yes && shift ;;
            -h | --help) usage && exit 0 ;;
            *) die "unknown option for build: $1 (see --help)" ;;
        esac
    done
    ((${#targets[@]} > 0)) || targets=("${DEFAULT_TARGETS[@]}")

    mkdir -p "$OUT_DIR"
    # Old archives would otherwise end up in the new SHA256SUMS.
    rm -f "$OUT_DIR"/chatter-*.tar.gz "$OUT_DIR"/chatter-*.zip "$OUT_DIR/SHA256SUMS"
    make_stage_dir
    local work="$STAGE_DIR"

    local -a built=() missing=()
    local requested result label rust_target name archive
    for requested in "${targets[@]}"; do
        say "target $requested"
        if ! result="$(build_and_stage "$requested" "$force_glibc" no "$work/tmp-$requested")"; then
            missing+=("$requested")
            continue
        fi
        read -r label rust_target <<<"$result"
        name="chatter-$VERSION-$label"
        mv "$work/tmp-$requested" "$work/$name"
        cp "$DIST_DIR/README.md" "$work/$name/README.md"
        if [[ "$rust_target" == *linux* ]]; then
            mkdir -p "$work/$name/systemd" "$work/$name/fail2ban"
            cp "$DIST_DIR/systemd/chatter-server.service" "$work/$name/systemd/"
            cp -r "$DIST_DIR/fail2ban/filter.d" "$DIST_DIR/fail2ban/jail.d" "$work/$name/fail2ban/"
        fi
        archive="$OUT_DIR/$name.$(archive_ext "$rust_target")"
        pack "$work" "$name" "$archive"
        built+=("$archive")
    done
    write_checksums "$OUT_DIR"
    report_summary "$OUT_DIR" "${#missing[@]}" "${built[@]}" "${missing[@]}" || exit 1
}

# Prints what was built and what was not. $1 out dir, $2 number of missing, then built, then missing.
report_summary() {
    local dir="$1" n_missing="$2"
    shift 2
    local -a all=("$@")
    local n_built=$((${#all[@]} - n_missing))
    printf '\nBuilt %d archive(s) in %s:\n' "$n_built" "$dir" >&2
    local archive
    for archive in "${all[@]:0:n_built}"; do
        printf '  %-60s %s\n' "$(basename "$archive")" "$(du -h "$archive" | cut -f1)" >&2
    done
    [[ -f "$dir/SHA256SUMS" ]] && printf '  SHA256SUMS\n' >&2
    if ((n_missing > 0)); then
        printf '\nNOT built (see the warnings above for what is missing):\n' >&2
        printf '  %s\n' "${all[@]:n_built}" >&2
        return 1
    fi
}

# Checks HOST:PORT, with IPv6 literals in brackets ([::1]:9001).
valid_server() {
    local server="$1" host port
    [[ "$server" =~ ^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):([0-9]{1,5})$ ]] || return 1
    host="${BASH_REMATCH[1]}"
    port="${BASH_REMATCH[3]}"
    [[ -n "$host" ]] && ((10#$port >= 1 && 10#$port <= 65535))
}

# A TOML basic string: backslashes and quotes escaped; control characters are refused earlier.
toml_string() {
    local value="${1//\\/\\\\}"
    printf '"%s"' "${value//\"/\\\"}"
}

cmd_bundle() {
    local server="" name="" nick="" color=""
    local -a targets=()
    while (($# > 0)); do
        case "$1" in
            --server) server="${2:?--server needs HOST:PORT}" && shift 2 ;;
            --name) name="${2:?--name needs a value}" && shift 2 ;;
            --nick) nick="${2:?--nick needs a value}" && shift 2 ;;
            --color) color="${2:?--color needs true or false}" && shift 2 ;;
            --target) targets+=("${2:?--target needs a value}") && shift 2 ;;
            --access-code* | --code* | --password* | --secret* | --passphrase*)
                die "refusing ${1%%=*}: the access code is never written into a bundle. Send it to your friend by another channel (say it, or use a messenger), never together with the bundle"
                ;;
            -h | --help) usage && exit 0 ;;
            *) die "unknown option for bundle: $1 (see --help)" ;;
        esac
    done
    [[ -n "$server" ]] || die "bundle needs --server HOST:PORT (e.g. --server chat.example.org:9001)"
    valid_server "$server" || die "--server must be HOST:PORT, e.g. chat.example.org:9001 or [2001:db8::1]:9001; got '$server'"
    if [[ -z "$name" ]]; then
        name="${server%:*}"
        name="${name//[\[\]]/}"
        name="${name//:/-}"
    fi
    [[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "--name may hold only letters, digits, '.', '_' and '-'; got '$name'"
    if [[ -n "$nick" ]] && [[ "$nick" =~ [[:cntrl:]] ]]; then
        die "--nick must not contain control characters"
    fi
    case "$color" in
        "" | true | false) ;;
        *) die "--color must be true or false; got '$color'" ;;
    esac
    ((${#targets[@]} > 0)) || targets=("${DEFAULT_TARGETS[@]}")

    local out="$OUT_DIR/bundle-$name"
    rm -rf "$out"
    mkdir -p "$out"
    make_stage_dir
    local work="$STAGE_DIR"

    local -a built=() missing=()
    local requested result label rust_target dir archive
    for requested in "${targets[@]}"; do
        say "bundle target $requested"
        if ! result="$(build_and_stage "$requested" no yes "$work/tmp-$requested")"; then
            missing+=("$requested")
            continue
        fi
        read -r label rust_target <<<"$result"
        dir="chatter-$VERSION-$name-$label"
        mv "$work/tmp-$requested" "$work/$dir"
        write_client_config "$work/$dir/chatter.toml" "$server" "$nick" "$color"
        write_friend_readme "$work/$dir/README.txt" "$server" "$rust_target" "$nick"
        if [[ "$rust_target" == *windows* ]]; then
            # Notepad before Windows 10 shows LF-only files as one long line.
            sed -i 's/$/\r/' "$work/$dir/README.txt"
        fi
        archive="$out/$dir.$(archive_ext "$rust_target")"
        pack "$work" "$dir" "$archive"
        built+=("$archive")
    done
    write_checksums "$out"
    report_summary "$out" "${#missing[@]}" "${built[@]}" "${missing[@]}" || exit 1
}

write_client_config() {
    local file="$1" server="$2" nick="$3" color="$4"
    {
        printf '# CLI Chatter client settings. The client reads this file (next to the\n'
        printf '# program) first, then your own config file. The access code is never stored here.\n'
        printf 'server = %s\n' "$(toml_string "$server")"
        if [[ -n "$nick" ]]; then
            printf 'nick = %s\n' "$(toml_string "$nick")"
        fi
        if [[ -n "$color" ]]; then
            printf 'color = %s\n' "$color"
        fi
    } >"$file"
}

write_friend_readme() {
    local file="$1" server="$2" rust_target="$3" nick="$4" run
    if [[ "$rust_target" == *windows* ]]; then
        run='Double-click chatter.exe, or open a terminal (PowerShell) in this folder
and type:  .\chatter.exe'
    else
        run='Open a terminal in this folder and type:  ./chatter'
    fi
    cat >"$file" <<EOF
CLI Chatter $VERSION - end-to-end encrypted chat in your terminal
=================================================================

This copy is already set up to talk to the server $server
(see chatter.toml next to the program).

1. $run
2. Type the nickname you want to use${nick:+ (this copy suggests "$nick")}.
3. Type the access code the person who sent you this gave you. It is not in
   this folder on purpose: ask them for it by phone or another messenger.

Type /help inside the chat for the list of commands.

Keep chatter.toml next to the program. To use another server, edit the
"server" line in it.
EOF
}

main() {
    local command="build"
    if (($# > 0)); then
        case "$1" in
            build | bundle) command="$1" && shift ;;
            -h | --help | help) usage && exit 0 ;;
        esac
    fi
    case "$command" in
        build) cmd_build "$@" ;;
        bundle) cmd_bundle "$@" ;;
    esac
}

main "$@"
