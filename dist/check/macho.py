#!/usr/bin/env python3
"""Checks a macOS executable without a Mac: format, architecture, minimum macOS version, the
libraries it loads (system ones only) and its ad-hoc code signature.

Apple Silicon refuses to start an arm64 program whose signature does not match its pages, and a
cross build can break the linker's signature afterwards (stripping, for one), so the page hashes
are recomputed here. Only what the release binaries use is understood: a thin 64-bit Mach-O and
a CodeDirectory with SHA-256 page hashes.

Usage: macho.py BINARY ARCH MIN_MACOS      (ARCH: arm64 or x86_64; MIN_MACOS e.g. 11.0)
Prints one line per finding; exits 1 on the first failed check.
"""

import hashlib
import struct
import sys

MH_MAGIC_64 = 0xFEEDFACF
MH_EXECUTE = 2
CPU_TYPES = {"arm64": 0x0100000C, "x86_64": 0x01000007}
LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB, LC_REEXPORT_DYLIB = 0xC, 0x80000018, 0x8000001F
LC_CODE_SIGNATURE, LC_VERSION_MIN_MACOSX, LC_BUILD_VERSION = 0x1D, 0x24, 0x32
PLATFORM_MACOS = 1
CSMAGIC_EMBEDDED_SIGNATURE, CSMAGIC_CODEDIRECTORY = 0xFADE0CC0, 0xFADE0C02
CS_HASHTYPE_SHA256 = 2
SYSTEM_PREFIXES = ("/usr/lib/", "/System/Library/Frameworks/")


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def version(packed):
    """Mach-O's X.Y.Z in nibbles xxxx.yy.zz, as X.Y."""
    return f"{packed >> 16}.{(packed >> 8) & 0xFF}"


def as_tuple(text):
    return tuple(int(part) for part in text.split("."))


def check_signature(data, offset, size):
    blob = data[offset : offset + size]
    magic, _length, count = struct.unpack_from(">III", blob, 0)
    if magic != CSMAGIC_EMBEDDED_SIGNATURE:
        fail(f"code signature has magic {magic:#x}, not an embedded signature")
    for index in range(count):
        _slot, blob_offset = struct.unpack_from(">II", blob, 12 + 8 * index)
        if struct.unpack_from(">I", blob, blob_offset)[0] != CSMAGIC_CODEDIRECTORY:
            continue
        (_magic, _len, _version, _flags, hash_offset, _ident, _special, n_code_slots,
         code_limit, hash_size, hash_type, _platform, page_shift) = struct.unpack_from(
            ">IIIIIIIIIBBBB", blob, blob_offset)
        if hash_type != CS_HASHTYPE_SHA256:
            fail(f"code directory hash type {hash_type} is not SHA-256")
        page = 1 << page_shift
        for slot in range(n_code_slots):
            start = slot * page
            expected = blob[blob_offset + hash_offset + slot * hash_size :][:hash_size]
            actual = hashlib.sha256(data[start : min(start + page, code_limit)]).digest()
            if actual[:hash_size] != expected:
                fail(f"code signature page {slot} does not match the binary")
        return f"{n_code_slots} pages of {page} bytes, SHA-256, all match"
    fail("code signature has no code directory")


def main():
    if len(sys.argv) != 4 or sys.argv[2] not in CPU_TYPES:
        sys.exit(__doc__)
    path, arch, min_macos = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(path, "rb") as file:
        data = file.read()
    magic, cpu_type, _sub, file_type, n_commands, _size, _flags, _reserved = struct.unpack_from(
        "<IiiIIIII", data, 0)
    if magic != MH_MAGIC_64:
        fail(f"not a thin 64-bit Mach-O file (magic {magic:#x})")
    if cpu_type != CPU_TYPES[arch]:
        fail(f"CPU type {cpu_type:#x}, expected {arch}")
    if file_type != MH_EXECUTE:
        fail(f"file type {file_type}, expected an executable")
    print(f"format: Mach-O 64-bit executable, {arch}")

    libraries, minos, signature = [], None, None
    offset = 32
    for _ in range(n_commands):
        command, size = struct.unpack_from("<II", data, offset)
        if command in (LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB, LC_REEXPORT_DYLIB):
            name_offset = struct.unpack_from("<I", data, offset + 8)[0]
            name = data[offset + name_offset : offset + size].split(b"\0")[0].decode()
            libraries.append(name)
        elif command == LC_BUILD_VERSION:
            platform, packed = struct.unpack_from("<II", data, offset + 8)
            if platform != PLATFORM_MACOS:
                fail(f"built for platform {platform}, not macOS")
            minos = version(packed)
        elif command == LC_VERSION_MIN_MACOSX:
            minos = version(struct.unpack_from("<I", data, offset + 8)[0])
        elif command == LC_CODE_SIGNATURE:
            signature = struct.unpack_from("<II", data, offset + 8)
        offset += size

    if minos is None:
        fail("no minimum macOS version recorded")
    if as_tuple(minos) > as_tuple(min_macos):
        fail(f"needs macOS {minos}, newer than {min_macos}")
    print(f"minimum macOS: {minos}")
    for name in libraries:
        if not name.startswith(SYSTEM_PREFIXES):
            fail(f"links {name}, which is not a system library")
    print(f"links (system only): {', '.join(libraries)}")
    if signature is None:
        if arch == "arm64":
            fail("no code signature: Apple Silicon refuses to run unsigned programs")
        print("code signature: none (allowed on x86_64)")
    else:
        print(f"code signature: {check_signature(data, *signature)}")


if __name__ == "__main__":
    main()
