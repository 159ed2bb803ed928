/*
 * Test-only LD_PRELOAD shim (tests/soft_breakers.rs): holds this process at every atomic
 * name exchange, renameat2(..., RENAME_EXCHANGE), which the crate makes through libc's
 * `syscall` (so the symbol can be interposed). Nothing of it is in the library.
 *
 * With TFL_GATE=1 in the environment, around the n-th exchange the process
 *   - writes "@@gate before <n>\n" to its stdout (the test harness's message channel),
 *   - reads one line from its stdin: "go" runs this exchange; "free" runs it and every
 *     later one without asking; end of input (the test is gone) aborts the process,
 *   - writes "@@gate after <n> <rc> <errno>\n" once the exchange returned.
 * Every other system call passes straight through; without TFL_GATE it does nothing.
 * The child reads stdin itself only after its acquire, so the lines never mix.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

typedef long (*syscall_fn)(long, ...);

static int free_run = 0;
static unsigned long exchanges = 0;

static void tell(const char *line) {
    size_t len = strlen(line);
    while (len > 0) {
        ssize_t n = write(1, line, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) abort();
        line += n;
        len -= (size_t)n;
    }
}

/* Reads one line from stdin, byte by byte (nothing beyond it is consumed). */
static void hear(char *line, size_t size) {
    size_t used = 0;
    for (;;) {
        char byte;
        ssize_t got = read(0, &byte, 1);
        if (got < 0 && errno == EINTR) continue;
        if (got != 1) abort(); /* the test is gone: never run an exchange unheld */
        if (byte == '\n') break;
        if (used + 1 < size) line[used++] = byte;
    }
    line[used] = '\0';
}

long syscall(long number, ...) {
    static syscall_fn real = NULL;
    if (real == NULL) real = (syscall_fn)dlsym(RTLD_NEXT, "syscall");
    va_list ap;
    va_start(ap, number);
    long a = va_arg(ap, long), b = va_arg(ap, long), c = va_arg(ap, long);
    long d = va_arg(ap, long), e = va_arg(ap, long), f = va_arg(ap, long);
    va_end(ap);
    if (number != SYS_renameat2 || !(e & RENAME_EXCHANGE) || getenv("TFL_GATE") == NULL) {
        return real(number, a, b, c, d, e, f);
    }
    unsigned long n = ++exchanges;
    char line[128];
    snprintf(line, sizeof line, "@@gate before %lu\n", n);
    tell(line);
    if (!free_run) {
        char command[32];
        hear(command, sizeof command);
        if (strcmp(command, "free") == 0) {
            free_run = 1;
        } else if (strcmp(command, "go") != 0) {
            abort();
        }
    }
    long rc = real(number, a, b, c, d, e, f);
    int saved = errno;
    snprintf(line, sizeof line, "@@gate after %lu %ld %d\n", n, rc, rc == 0 ? 0 : saved);
    tell(line);
    errno = saved;
    return rc;
}
