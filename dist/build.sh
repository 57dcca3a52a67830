#!/usr/bin/env bash
# Builds the release archives of CLI Chatter for Linux, Windows and macOS from one Linux machine,
# checks them (dist/check.sh), and makes preconfigured client bundles and the relay's image.
#
#   dist/build.sh [build] [--target TRIPLE]... [--no-check]
#   dist/build.sh bundle --server HOST:PORT [--name NAME] [--nick NICK] [--color true|false]
#                        [--target TRIPLE]...
#   dist/build.sh image [--arch amd64|arm64]
#
# Cross-compilation is cargo-zigbuild's job (zig is the C compiler and linker for every target);
# this script only fetches the tools, calls it once per target and packs what it built.
# Everything is written to dist/out/ (gitignored). See dist/README.md.
set -Eeuo pipefail
# set -e alone exits silently; say which command stopped the script.
trap 'printf "error: \"%s\" failed (dist/build.sh line %d)\n" "$BASH_COMMAND" "$LINENO" >&2' ERR

readonly DEFAULT_TARGETS=(
    x86_64-unknown-linux-musl
    aarch64-unknown-linux-musl
    x86_64-pc-windows-gnu
    aarch64-apple-darwin
    x86_64-apple-darwin
)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly DIST_DIR="$REPO_ROOT/dist"
readonly OUT_DIR="$DIST_DIR/out"

# shellcheck source=dist/lib.sh
source "$DIST_DIR/lib.sh"

usage() {
    cat <<'USAGE'
Usage:
  dist/build.sh [build] [--target TRIPLE]... [--no-check]
      Release archives for every target (default: x86_64-unknown-linux-musl,
      aarch64-unknown-linux-musl, x86_64-pc-windows-gnu, aarch64-apple-darwin,
      x86_64-apple-darwin). Linux archives hold chatter and chatter-server (static,
      musl); Windows and macOS archives hold the client only (the relay is for
      servers). Writes dist/out/chatter-<version>-<target>.tar.gz (.zip for
      Windows) and dist/out/SHA256SUMS, then runs dist/check.sh on them unless
      --no-check is given.

  dist/build.sh bundle --server HOST:PORT [--name NAME] [--nick NICK]
                       [--color true|false] [--target TRIPLE]...
      Client-only archives with a chatter.toml beside the binary that pins the
      relay, for handing to a friend. Writes
      dist/out/bundle-<name>/chatter-<version>-<name>-<target>.{tar.gz,zip}
      and a SHA256SUMS there. The access code is never put in a bundle: give
      it to your friend by another channel.

  dist/build.sh image [--arch amd64|arm64]
      The relay's FROM scratch container image, chatter-server:<version>, from
      the static chatter-server of the matching Linux archive (built first if
      missing), with podman or docker. Nothing is pulled from a registry.

What it fetches by itself: rustup targets (rustup target add), cargo-zigbuild
and zig (pip, into a private virtualenv under ~/.cache/chatter-dist or
$CHATTER_DIST_TOOLS), and Debian packages where nothing else does the job
(python3-venv, zip; installed when run as root, otherwise named in one line).
Environment: CARGO (default cargo), SOURCE_DATE_EPOCH (default: the last
commit's time); CARGO_TARGET_DIR is honoured like any cargo setting.
USAGE
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

# --- tools -------------------------------------------------------------------

# Installs a rustup target if it is missing.
ensure_rust_target() {
    local target="$1"
    command -v rustup >/dev/null 2>&1 ||
        die "rustup is needed to add the standard library of $target (https://rustup.rs)"
    rustup target list --installed | grep -qx "$target" && return 0
    say "adding rustup target $target"
    rustup target add "$target" >&2 || die "could not add the rustup target $target (offline?)"
}

# --- targets -----------------------------------------------------------------

# Binaries to build for a target: the relay ships for Linux servers only.
bins_for() {
    local target="$1" only_client="$2"
    if [[ "$only_client" == yes || "$target" != *linux* ]]; then
        echo chatter
    else
        echo "chatter chatter-server"
    fi
}

exe_suffix() { [[ "$1" == *windows* ]] && echo .exe || echo ""; }

# The oldest macOS each Apple target runs on (rustc's own defaults). zig would otherwise stamp
# its newest SDK version as the minimum, and older Macs would refuse to start the program.
macos_deployment_target() {
    case "$1" in
        aarch64-apple-darwin) echo 11.0 ;;
        x86_64-apple-darwin) echo 10.12 ;;
    esac
}

# chrono (through reedline, which needs its `clock` feature) asks iana-time-zone for the local
# zone, and iana-time-zone links CoreFoundation on macOS. Linking needs only to know which
# symbols that system framework exports, so instead of Apple's SDK this writes a text stub
# (.tbd, the format the SDK itself uses) listing the few it uses; at run time the Mac's own
# CoreFoundation is loaded, as with an SDK build. dist/check.sh checks what the binary links.
write_corefoundation_stub() {
    local dir="$1/CoreFoundation.framework"
    mkdir -p "$dir"
    cat >"$dir/CoreFoundation.tbd" <<'TBD'
--- !tapi-tbd
tbd-version:     4
targets:         [ x86_64-macos, arm64-macos ]
install-name:    '/System/Library/Frameworks/CoreFoundation.framework/Versions/A/CoreFoundation'
current-version: 1953.300
compatibility-version: 150
exports:
  - targets:     [ x86_64-macos, arm64-macos ]
    symbols:     [ _CFRelease, _CFStringGetBytes, _CFStringGetCStringPtr, _CFStringGetLength,
                   _CFTimeZoneCopySystem, _CFTimeZoneGetName, _CFTimeZoneResetSystem ]
...
TBD
}

# Fails unless a Linux binary is statically linked (no program interpreter, no NEEDED library).
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

# Builds the given binaries for one target with `cargo zigbuild --profile dist`.
cargo_build() {
    local target="$1"
    shift
    local env_prefix bin
    env_prefix="$(echo "$target" | tr '[:lower:]-' '[:upper:]_')"
    local -a bin_args=() env_vars=("PATH=$VENV/bin:$PATH")
    for bin in "$@"; do bin_args+=(--bin "$bin"); done
    # Paths of this checkout and of the cargo registry end up in panic messages; mapping them to
    # fixed names makes the binaries the same wherever the repository is checked out.
    local rustflags="--remap-path-prefix=$REPO_ROOT=chatter"
    rustflags+=" --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=cargo"
    if [[ "$target" == *apple-darwin ]]; then
        write_corefoundation_stub "$TOOLS_DIR/macos-frameworks"
        rustflags+=" -C link-arg=-F$TOOLS_DIR/macos-frameworks"
        env_vars+=("MACOSX_DEPLOYMENT_TARGET=$(macos_deployment_target "$target")")
    fi
    # With an explicit --target these reach only the target's code, not build scripts.
    env_vars+=("CARGO_TARGET_${env_prefix}_RUSTFLAGS=$rustflags")
    say "cargo zigbuild --profile dist --locked --target $target ${bin_args[*]}"
    env "${env_vars[@]}" "$CARGO" zigbuild --manifest-path "$REPO_ROOT/Cargo.toml" \
        --profile dist --locked --target "$target" "${bin_args[@]}"
}

# --- archives ----------------------------------------------------------------

# Packs directory $2 (under $1) into $3 (.tar.gz or .zip), reproducibly.
pack() {
    local parent="$1" name="$2" archive="$3"
    find "$parent/$name" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    rm -f "$archive"
    case "$archive" in
        *.zip)
            # zip stores local time; UTC makes the archive the same in every time zone.
            (cd "$parent" && find "$name" -print | LC_ALL=C sort |
                TZ=UTC zip -X -q -@ "$archive")
            ;;
        *.tar.gz)
            tar -C "$parent" --sort=name --owner=0 --group=0 --numeric-owner \
                --mtime="@$SOURCE_DATE_EPOCH" -cf - "$name" | gzip -9 -n >"$archive"
            ;;
    esac
}

archive_ext() { [[ "$1" == *windows* ]] && echo zip || echo tar.gz; }

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

# Builds one target and stages its binaries in $3. $1 target, $2 client only (yes/no).
build_and_stage() {
    local target="$1" only_client="$2" stage="$3"
    local -a bins
    read -r -a bins <<<"$(bins_for "$target" "$only_client")"
    ensure_rust_target "$target"
    cargo_build "$target" "${bins[@]}" || die "cargo zigbuild failed for $target (see above)"
    mkdir -p "$stage"
    local bin path suffix
    suffix="$(exe_suffix "$target")"
    local target_dir
    target_dir="$(cargo_target_dir "$REPO_ROOT")" || die "cargo metadata could not name the target directory"
    for bin in "${bins[@]}"; do
        path="$target_dir/$target/dist/$bin$suffix"
        [[ -f "$path" ]] || die "cargo did not produce $path"
        if [[ "$target" == *linux* ]]; then
            check_static "$path" || die "$path is not static"
        fi
        install -m 0755 "$path" "$stage/$bin$suffix"
    done
}

# A scratch directory under dist/out/, removed when the script exits.
STAGE_DIR=""
make_stage_dir() {
    STAGE_DIR="$(mktemp -d "$OUT_DIR/.stage.XXXXXX")"
    trap 'rm -rf "$STAGE_DIR"' EXIT
}

known_target() {
    local target="$1" known
    for known in "${DEFAULT_TARGETS[@]}"; do
        [[ "$known" == "$target" ]] && return 0
    done
    die "unknown target $target; known: ${DEFAULT_TARGETS[*]}"
}

# Everything every build needs, before the first long compile.
prepare_build() {
    local target
    for target in "$@"; do known_target "$target"; done
    need_command zip zip
    need_command readelf binutils
    ensure_zigbuild
}

# --- commands ----------------------------------------------------------------

cmd_build() {
    local check=yes
    local -a targets=()
    while (($# > 0)); do
        case "$1" in
            --target) targets+=("${2:?--target needs a value}") && shift 2 ;;
            --no-check) check=no && shift ;;
            -h | --help) usage && exit 0 ;;
            *) die "unknown option for build: $1 (see --help)" ;;
        esac
    done
    ((${#targets[@]} > 0)) || targets=("${DEFAULT_TARGETS[@]}")
    prepare_build "${targets[@]}"

    mkdir -p "$OUT_DIR"
    # Old archives would otherwise end up in the new SHA256SUMS.
    rm -f "$OUT_DIR"/chatter-*.tar.gz "$OUT_DIR"/chatter-*.zip "$OUT_DIR/SHA256SUMS"
    make_stage_dir
    local work="$STAGE_DIR" target name archive
    for target in "${targets[@]}"; do
        say "target $target"
        name="chatter-$VERSION-$target"
        build_and_stage "$target" no "$work/$name"
        cp "$DIST_DIR/README.md" "$work/$name/README.md"
        if [[ "$target" == *linux* ]]; then
            mkdir -p "$work/$name/systemd" "$work/$name/fail2ban"
            cp "$DIST_DIR/systemd/chatter-server.service" "$work/$name/systemd/"
            cp -r "$DIST_DIR/fail2ban/filter.d" "$DIST_DIR/fail2ban/jail.d" "$work/$name/fail2ban/"
        fi
        archive="$OUT_DIR/$name.$(archive_ext "$target")"
        pack "$work" "$name" "$archive"
    done
    write_checksums "$OUT_DIR"
    report_summary "$OUT_DIR"
    if [[ "$check" == yes ]]; then
        "$DIST_DIR/check.sh" "$OUT_DIR"
    fi
}

# Lists what was built.
report_summary() {
    local dir="$1" archive
    printf '\nBuilt in %s:\n' "$dir" >&2
    for archive in "$dir"/chatter-*.tar.gz "$dir"/chatter-*.zip; do
        [[ -f "$archive" ]] || continue
        printf '  %-56s %10s bytes\n' "$(basename "$archive")" "$(stat -c %s "$archive")" >&2
    done
    [[ -f "$dir/SHA256SUMS" ]] && printf '  SHA256SUMS\n' >&2
    return 0
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
    prepare_build "${targets[@]}"

    local out="$OUT_DIR/bundle-$name"
    rm -rf "$out"
    mkdir -p "$out"
    make_stage_dir
    local work="$STAGE_DIR" target dir
    for target in "${targets[@]}"; do
        say "bundle target $target"
        dir="chatter-$VERSION-$name-$target"
        build_and_stage "$target" yes "$work/$dir"
        write_client_config "$work/$dir/chatter.toml" "$server" "$nick" "$color"
        write_friend_readme "$work/$dir/README.txt" "$server" "$target" "$nick"
        if [[ "$target" == *windows* ]]; then
            # Notepad before Windows 10 shows LF-only files as one long line.
            sed -i 's/$/\r/' "$work/$dir/README.txt"
        fi
        pack "$work" "$dir" "$out/$dir.$(archive_ext "$target")"
    done
    write_checksums "$out"
    report_summary "$out"
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

# The relay's container image from the static chatter-server of a Linux archive.
cmd_image() {
    local arch=""
    while (($# > 0)); do
        case "$1" in
            --arch) arch="${2:?--arch needs amd64 or arm64}" && shift 2 ;;
            -h | --help) usage && exit 0 ;;
            *) die "unknown option for image: $1 (see --help)" ;;
        esac
    done
    if [[ -z "$arch" ]]; then
        case "$(uname -m)" in
            aarch64 | arm64) arch=arm64 ;;
            *) arch=amd64 ;;
        esac
    fi
    local target
    case "$arch" in
        amd64) target=x86_64-unknown-linux-musl ;;
        arm64) target=aarch64-unknown-linux-musl ;;
        *) die "--arch must be amd64 or arm64; got '$arch'" ;;
    esac
    local name="chatter-$VERSION-$target"
    if [[ ! -f "$OUT_DIR/$name.tar.gz" ]]; then
        # check.sh needs the x86_64 archive too: its client is every exchange's peer.
        local -a build_targets=(--target x86_64-unknown-linux-musl)
        [[ "$target" == x86_64-unknown-linux-musl ]] || build_targets+=(--target "$target")
        "${BASH_SOURCE[0]}" build "${build_targets[@]}"
    fi
    local engine
    if command -v podman >/dev/null 2>&1; then
        engine=podman
    elif command -v docker >/dev/null 2>&1; then
        engine=docker
    else
        need_package podman
        engine=podman
    fi
    mkdir -p "$OUT_DIR"
    make_stage_dir
    local context="$STAGE_DIR/context"
    mkdir -p "$context/report"
    tar -xzf "$OUT_DIR/$name.tar.gz" -C "$STAGE_DIR" "$name/chatter-server"
    mv "$STAGE_DIR/$name/chatter-server" "$context/chatter-server"
    cp "$DIST_DIR/docker/Dockerfile" "$context/Dockerfile"
    find "$context" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    local -a args=(build --platform "linux/$arch" -t "chatter-server:$VERSION" -t chatter-server:local)
    # podman can stamp every layer and the image config with the commit time, like the archives.
    [[ "$engine" == podman ]] && args+=(--timestamp "$SOURCE_DATE_EPOCH")
    say "$engine ${args[*]} (context: chatter-server from $name.tar.gz)"
    "$engine" "${args[@]}" "$context"
}

main() {
    local command="build"
    if (($# > 0)); then
        case "$1" in
            build | bundle | image) command="$1" && shift ;;
            -h | --help | help) usage && exit 0 ;;
        esac
    fi
    case "$command" in
        build) cmd_build "$@" ;;
        bundle) cmd_bundle "$@" ;;
        image) cmd_image "$@" ;;
    esac
}

main "$@"
