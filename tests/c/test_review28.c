#define _GNU_SOURCE
/* Review 28: obj_db_export_to streams an export to a callback (a pipe, a
 * socket, a compressor) with the same bytes obj_db_export writes to a file,
 * and a callback that refuses stops it with OBJ_IO. */
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include "check.h"

#define U8(s) ((const uint8_t *)(s))
#define JSON(s) U8(s), strlen(s)

static char dir[400];

/* What the callback received, and when it refuses. */
typedef struct {
    char *buf;
    size_t len, cap;
    size_t calls;
    size_t refuse_at; /* refuse the call with this number (from 1); 0: never */
} sink;

static int32_t collect(const uint8_t *data, size_t len, void *ctx) {
    sink *s = ctx;
    s->calls++;
    if (s->refuse_at && s->calls == s->refuse_at) return 7;
    CHECK(len > 0 && len <= (64 << 10));
    if (s->len + len > s->cap) {
        s->cap = (s->len + len) * 2;
        s->buf = realloc(s->buf, s->cap);
        CHECK(s->buf != NULL);
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    return 0;
}

static void export_to_a_callback(void) {
    char path[512], file[600];
    snprintf(path, sizeof path, "%s/c-review28-%d.obj", dir, (int)getpid());
    remove_db(path);
    obj_db *db = NULL;
    CHECK_OK(obj_db_open(path, NULL, &db));
    obj_txn *w = NULL;
    CHECK_OK(obj_txn_begin_write(db, &w));
    char doc[200];
    for (int i = 0; i < 3000; i++) {
        snprintf(doc, sizeof doc, "{\"n\":%d,\"pad\":\"%0100d\"}", i, i);
        CHECK_OK(obj_doc_insert(w, "notes", JSON(doc), 0, &(uint64_t){0}));
    }
    CHECK_OK(obj_kv_put(w, "settings", U8("theme"), 5, U8("dark"), 4));
    /* One line of 300 KB: still handed over in pieces of at most 64 KiB. */
    size_t big_len = 300000;
    char *big = malloc(big_len + 32);
    CHECK(big != NULL);
    const char *head = "{\"n\":-1,\"pad\":\"";
    size_t h = strlen(head);
    memcpy(big, head, h);
    memset(big + h, 'x', big_len);
    memcpy(big + h + big_len, "\"}", 3);
    CHECK_OK(obj_doc_insert(w, "notes", JSON(big), 0, &(uint64_t){0}));
    free(big);
    CHECK_OK(obj_txn_commit(w));
    obj_txn_free(w);

    /* Everything, and one collection: the bytes of obj_db_export. */
    const char *what[] = {NULL, "notes"};
    for (size_t i = 0; i < 2; i++) {
        sink s = {0};
        obj_bytes report = {0};
        CHECK_OK(obj_db_export_to(db, what[i], collect, &s, &report));
        CHECK(s.calls > 1); /* pieces of at most 64 KiB */
        CHECK(report.len > 0 && memmem(report.data, report.len, "\"documents\":3001", 16) != NULL);
        obj_bytes_free(&report);
        snprintf(file, sizeof file, "%s.%zu.jsonl", path, i);
        CHECK_OK(obj_db_export(db, what[i], file, NULL));
        size_t n = 0;
        uint8_t *want = read_file(file, &n);
        CHECK(n == s.len && memcmp(want, s.buf, n) == 0);
        free(want);
        unlink(file);
        free(s.buf);
    }

    /* A refusal stops the export: OBJ_IO naming the value, a prefix sent. */
    sink s = {.refuse_at = 2};
    CHECK_ERR(obj_db_export_to(db, NULL, collect, &s, NULL), OBJ_IO, "the write callback returned 7");
    CHECK(s.calls == 2 && s.len > 0 && s.len <= (64 << 10));
    free(s.buf);

    /* NULL callback, missing collection, NULL and closed handles. */
    CHECK_ERR(obj_db_export_to(db, NULL, NULL, NULL, NULL), OBJ_INVALID_ARGUMENT, "write is NULL");
    sink none = {0};
    CHECK_STATUS(obj_db_export_to(db, "nope", collect, &none, NULL), OBJ_NOT_FOUND);
    CHECK(none.calls == 0);
    CHECK_STATUS(obj_db_export_to(NULL, NULL, collect, &none, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_db_close(db));
    CHECK_STATUS(obj_db_export_to(db, NULL, collect, &none, NULL), OBJ_CLOSED);
    CHECK(none.calls == 0);
    obj_db_free(db);
    remove_db(path);
}

int main(int argc, char **argv) {
    snprintf(dir, sizeof dir, "%s", argc > 1 ? argv[1] : ".");
    export_to_a_callback();
    printf("c review28: %d passed, 0 failed\n", checks_run);
    return 0;
}
