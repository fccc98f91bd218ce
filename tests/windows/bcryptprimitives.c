/* Test-only shim for Wine 8 (Debian 12), which lacks bcryptprimitives.dll: Rust's std (1.78+)
 * draws its random numbers from ProcessPrng there. This forwards to RtlGenRandom, which Wine
 * has. It is copied next to the test executables run under Wine and never shipped. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG len);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, n)) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
