/* Tiny assertion helpers for the C tests. */
#ifndef OBJ_TEST_CHECK_H
#define OBJ_TEST_CHECK_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "obj.h"

static int checks_run = 0;

#define CHECK(cond)                                                        \
    do {                                                                   \
        checks_run++;                                                      \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n",  \
                    __FILE__, __LINE__, #cond, obj_last_error());          \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

#define CHECK_STATUS(call, want)                                           \
    do {                                                                   \
        obj_status got_ = (call);                                          \
        checks_run++;                                                      \
        if (got_ != (want)) {                                              \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (%s)\n",   \
                    __FILE__, __LINE__, #call, obj_status_name(got_),      \
                    obj_status_name(want), obj_last_error());              \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, OBJ_OK)

/* The call returns `want` and obj_last_error() contains `needle`. */
#define CHECK_ERR(call, want, needle)                                          \
    do {                                                                       \
        CHECK_STATUS(call, want);                                              \
        checks_run++;                                                          \
        if (strstr(obj_last_error(), (needle)) == NULL) {                      \
            fprintf(stderr, "%s:%d: %s: message \"%s\" lacks \"%s\"\n",        \
                    __FILE__, __LINE__, #call, obj_last_error(), (needle));    \
            exit(1);                                                           \
        }                                                                      \
    } while (0)
/* The whole file at `p` (free it with free()); its length in `*len`. */
static inline uint8_t *read_file(const char *p, size_t *len) {
    FILE *f = fopen(p, "rb");
    CHECK(f != NULL);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    CHECK(buf != NULL);
    CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* The document {"<field>":"<n copies of fill>"}, NUL-terminated (free it
 * with free()): a large document of one string field. */
static inline char *long_string_doc(const char *field, size_t n, char fill) {
    size_t head = strlen(field) + 5; /* {"field":" */
    char *doc = (char *)malloc(head + n + 3);
    CHECK(doc != NULL);
    snprintf(doc, head + 1, "{\"%s\":\"", field);
    memset(doc + head, fill, n);
    memcpy(doc + head + n, "\"}", 3);
    return doc;
}

/* Deletes a database file and its -wal and -shm sidecars, if present. */
static inline void remove_db(const char *path) {
    char side[1100];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

/* Number of documents in collection `coll`, read in a snapshot of its own. */
static inline uint64_t count_of(obj_db *db, const char *coll) {
    obj_txn *r = NULL;
    uint64_t n = 0;
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_collection_count(r, coll, &n));
    CHECK_OK(obj_txn_free(r));
    return n;
}

#endif
