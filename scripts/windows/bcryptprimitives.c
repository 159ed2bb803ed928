/*
 * bcryptprimitives.dll shim for running Rust test binaries under wine 8.
 *
 * Rust's std (since 1.78) imports ProcessPrng from bcryptprimitives.dll,
 * which wine 8 does not ship, so every binary fails to load. This DLL
 * exports only that function and fills the buffer with RtlGenRandom
 * (advapi32!SystemFunction036). Test-only; never shipped.
 *
 * Build: x86_64-w64-mingw32-gcc -shared -O2 -s -o bcryptprimitives.dll \
 *            bcryptprimitives.c -ladvapi32
 */
#include <windows.h>

/* RtlGenRandom is exported by advapi32 under this name. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE; /* the real ProcessPrng always returns TRUE */
}
