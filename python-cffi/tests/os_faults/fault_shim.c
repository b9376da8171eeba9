/* An LD_PRELOAD shim that makes real system calls fail, for the tests of
 * test_os_faults.py: fault_arm("fdatasync", "-wal", EIO, 1) fails the next
 * fdatasync of a file whose path ends in "-wal" once; a suffix that starts
 * with '*' matches anywhere in the path ("*.tmp-" for a temporary file of
 * random name). One rule at a time; ops: "fdatasync", "pwrite", "write". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char rule_op[16], rule_suffix[64];
static int rule_errno;
static long rule_left;

void fault_arm(const char *op, const char *suffix, int err, long count) {
    pthread_mutex_lock(&lock);
    snprintf(rule_op, sizeof rule_op, "%s", op);
    snprintf(rule_suffix, sizeof rule_suffix, "%s", suffix);
    rule_errno = err;
    rule_left = count;
    pthread_mutex_unlock(&lock);
}

void fault_clear(void) { fault_arm("", "", 0, 0); }

/* The errno to fail this call with, or 0 to let it through. */
static int fault_for(const char *op, int fd) {
    char link[64], path[4096];
    int err = 0;
    pthread_mutex_lock(&lock);
    if (rule_left > 0 && strcmp(op, rule_op) == 0) {
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, path, sizeof path - 1);
        size_t ls = strlen(rule_suffix);
        int match = 0;
        if (n >= 0) {
            path[n] = '\0';
            if (rule_suffix[0] == '*')
                match = strstr(path, rule_suffix + 1) != NULL;
            else
                match = (size_t)n >= ls && memcmp(path + n - ls, rule_suffix, ls) == 0;
        }
        if (match) {
            rule_left--;
            err = rule_errno;
        }
    }
    pthread_mutex_unlock(&lock);
    return err;
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    int err = fault_for("fdatasync", fd);
    if (err) { errno = err; return -1; }
    return real(fd);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) real = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
    int err = fault_for("pwrite", fd);
    if (err) { errno = err; return -1; }
    return real(fd, buf, n, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) real = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    int err = fault_for("pwrite", fd);
    if (err) { errno = err; return -1; }
    return real(fd, buf, n, off);
}

ssize_t write(int fd, const void *buf, size_t n) {
    static ssize_t (*real)(int, const void *, size_t);
    if (!real) real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    int err = fault_for("write", fd);
    if (err) { errno = err; return -1; }
    return real(fd, buf, n);
}
