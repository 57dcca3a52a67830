/*
 * TEST ONLY, never shipped: a stand-in for Windows' bcryptprimitives.dll, so that dist/check.sh
 * can run chatter.exe under Debian 12's Wine 8, which lacks that DLL.
 *
 * Rust's standard library (1.78 and later) gets random bytes from ProcessPrng in
 * bcryptprimitives.dll; every Windows 10 and later has it, Wine 8 does not, so no Rust program
 * starts there. This DLL, placed beside the .exe under test only, exports ProcessPrng on top of
 * SystemFunction036 (RtlGenRandom), which Wine implements from the host's random source.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
