#define _GNU_SOURCE
/* Exercises every function of the C ABI and its error paths. */
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"

static char path[512];
static char wal[520];

static void test_version_and_errors(void) {
    CHECK(strcmp(obj_version(), OBJ_VERSION_STRING) == 0);
    CHECK(strcmp(obj_status_name(OBJ_BUSY), "OBJ_BUSY") == 0);
    CHECK(strcmp(obj_status_name(OBJ_CONSTRAINT), "OBJ_CONSTRAINT") == 0);
    /* A code this library does not know (one from a newer version, say). */
    CHECK(strcmp(obj_status_name(12), "OBJ_UNKNOWN_STATUS") == 0);
    CHECK(strcmp(obj_status_name(-1), "OBJ_UNKNOWN_STATUS") == 0);
    CHECK(obj_last_error() != NULL);
    obj_bytes b = {0};
    CHECK_OK(obj_bytes_copy((const uint8_t *)"abc", 3, &b));
    CHECK(b.len == 3 && memcmp(b.data, "abc", 3) == 0);
    obj_bytes_free(&b);
    CHECK(b.data == NULL && b.len == 0);
    obj_bytes_free(&b); /* twice is harmless */
    obj_bytes_free(NULL);
    CHECK_STATUS(obj_bytes_copy(NULL, 5, &b), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "NULL") != NULL);
}

static void test_open_errors(void) {
    obj_db *db = NULL;
    CHECK_STATUS(obj_db_open(NULL, NULL, &db), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_open(path, NULL, NULL), OBJ_INVALID_ARGUMENT);
    const char bad_utf8[] = {'/', 't', 'm', 'p', '/', (char)0xff, (char)0xfe, 0};
    CHECK_STATUS(obj_db_open(bad_utf8, NULL, &db), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "UTF-8") != NULL);

    obj_options o;
    CHECK_OK(obj_options_init(&o));
    CHECK(o.struct_size == sizeof(obj_options) && o.page_size == 4096 && o.create);
    o.create = false;
    CHECK_STATUS(obj_db_open("/nonexistent-dir-obj/x.obj", &o, &db), OBJ_NOT_FOUND);
    CHECK_OK(obj_options_init(&o));
    o.page_size = 5000;
    CHECK_STATUS(obj_db_open(path, &o, &db), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_options_init(&o));
    o.sync_mode = 7;
    CHECK_STATUS(obj_db_open(path, &o, &db), OBJ_INVALID_ARGUMENT);
    o.sync_mode = 0;
    o.struct_size = 2;
    CHECK_STATUS(obj_db_open(path, &o, &db), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_options_init(NULL), OBJ_INVALID_ARGUMENT);

    /* A file that is not a database. */
    char junk[600];
    snprintf(junk, sizeof junk, "%s.junk", path);
    FILE *f = fopen(junk, "wb");
    for (int i = 0; i < 9000; i++) fputc('x', f);
    fclose(f);
    CHECK_STATUS(obj_db_open(junk, NULL, &db), OBJ_INVALID_ARGUMENT);
    /* An existing empty file is a database not yet written (as in SQLite):
     * it opens as a new one even with create off; read-only, it is refused. */
    f = fopen(junk, "wb");
    fclose(f);
    CHECK_OK(obj_options_init(&o));
    o.read_only = true;
    CHECK_STATUS(obj_db_open(junk, &o, &db), OBJ_INVALID_ARGUMENT);
    o.read_only = false;
    o.create = false;
    CHECK_OK(obj_db_open(junk, &o, &db));
    CHECK_OK(obj_db_free(db));
    char side[620];
    snprintf(side, sizeof side, "%s-wal", junk);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", junk);
    unlink(side);
    unlink(junk);
}

/* The calls that take the writer's lock wait out the busy timeout behind
 * an open write transaction, the calling thread's own included, then
 * return OBJ_BUSY (as their documentation says). */
static void test_busy_behind_own_writer(void) {
    char p[600], dump[620];
    snprintf(p, sizeof p, "%s.busy", path);
    snprintf(dump, sizeof dump, "%s.jsonl", p);
    unlink(p);
    obj_options o;
    CHECK_OK(obj_options_init(&o));
    o.busy_timeout_ms = 20;
    obj_db *db = NULL;
    CHECK_OK(obj_db_open(p, &o, &db));
    uint64_t id = 0;
    CHECK_OK(obj_db_doc_insert(db, "c", (const uint8_t *)"{}", 2, 0, &id));
    CHECK_OK(obj_db_export(db, NULL, dump, NULL));
    obj_txn *w = NULL;
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_STATUS(obj_db_checkpoint(db, NULL), OBJ_BUSY);
    CHECK_STATUS(obj_db_compact(db, NULL), OBJ_BUSY);
    CHECK_STATUS(obj_db_import(db, dump, 0, NULL), OBJ_BUSY);
    CHECK_STATUS(obj_db_doc_insert(db, "c", (const uint8_t *)"{}", 2, 0, &id), OBJ_BUSY);
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_db_checkpoint(db, NULL));
    CHECK_OK(obj_db_free(db));
    unlink(dump);
    unlink(p);
}

static void test_kv_and_transactions(void) {
    obj_db *db = NULL;
    obj_options o;
    obj_options_init(&o);
    o.busy_timeout_ms = 50;
    CHECK_OK(obj_db_open(path, &o, &db));

    obj_txn *w = NULL;
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_kv_put(w, "meta", (const uint8_t *)"k1", 2, (const uint8_t *)"v1", 2));
    CHECK_OK(obj_kv_put(w, "meta", NULL, 0, (const uint8_t *)"empty key", 9));
    CHECK_STATUS(obj_kv_put(w, "meta", NULL, 3, (const uint8_t *)"x", 1), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_put(w, "", (const uint8_t *)"k", 1, NULL, 0), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_put(w, NULL, (const uint8_t *)"k", 1, NULL, 0), OBJ_INVALID_ARGUMENT);
    static uint8_t huge_key[200000];
    CHECK_STATUS(obj_kv_put(w, "meta", huge_key, sizeof huge_key, NULL, 0), OBJ_INVALID_ARGUMENT);

    /* Reads its own writes. */
    obj_bytes v = {0};
    bool found = false;
    CHECK_OK(obj_kv_get(w, "meta", (const uint8_t *)"k1", 2, &v, &found));
    CHECK(found && v.len == 2 && memcmp(v.data, "v1", 2) == 0);
    obj_bytes_free(&v);

    /* A second writer is busy; a reader is not blocked and sees the old state. */
    obj_txn *w2 = NULL;
    CHECK_STATUS(obj_txn_begin_write(db, &w2), OBJ_BUSY);
    obj_txn *r = NULL;
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_kv_get(r, "meta", (const uint8_t *)"k1", 2, &v, &found));
    CHECK(!found && v.data == NULL);
    CHECK_STATUS(obj_kv_put(r, "meta", (const uint8_t *)"k", 1, NULL, 0), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "read transaction") != NULL);
    CHECK_OK(obj_txn_free(r));

    CHECK_OK(obj_txn_commit(w));
    /* A finished transaction refuses further use. */
    CHECK_STATUS(obj_txn_commit(w), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_put(w, "meta", (const uint8_t *)"k", 1, NULL, 0), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_get(w, "meta", (const uint8_t *)"k", 1, &v, &found), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_free(w));

    /* Rollback leaves no trace. */
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_kv_put(w, "meta", (const uint8_t *)"gone", 4, (const uint8_t *)"x", 1));
    bool existed = false;
    CHECK_OK(obj_kv_delete(w, "meta", (const uint8_t *)"k1", 2, &existed));
    CHECK(existed);
    CHECK_OK(obj_txn_rollback(w));
    CHECK_STATUS(obj_txn_rollback(w), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_free(w));
    /* Freeing an unfinished write transaction rolls it back. */
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_kv_put(w, "meta", (const uint8_t *)"gone2", 5, (const uint8_t *)"x", 1));
    CHECK_OK(obj_txn_free(w));

    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_kv_get(r, "meta", (const uint8_t *)"k1", 2, &v, &found));
    CHECK(found);
    obj_bytes_free(&v);
    CHECK_OK(obj_kv_get(r, "meta", (const uint8_t *)"gone", 4, &v, &found));
    CHECK(!found);
    CHECK_OK(obj_kv_get(r, "meta", (const uint8_t *)"gone2", 5, &v, &found));
    CHECK(!found);
    CHECK_OK(obj_kv_get(r, "nosuchns", (const uint8_t *)"k", 1, &v, &found));
    CHECK(!found);
    CHECK_STATUS(obj_kv_get(r, "meta", (const uint8_t *)"k1", 2, NULL, &found), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_delete(r, "meta", (const uint8_t *)"k1", 2, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_commit(r)); /* ends a read transaction */
    CHECK_OK(obj_txn_free(r));

    /* Wrong handle kinds and NULL handles. */
    CHECK_STATUS(obj_txn_commit((obj_txn *)db), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "handle") != NULL);
    CHECK_STATUS(obj_txn_begin_read(NULL, &r), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_txn_begin_read(db, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_free(NULL));

    obj_checkpoint_result cp;
    CHECK_OK(obj_db_checkpoint(db, &cp));
    CHECK(cp.complete && cp.pages_written > 0);
    CHECK_OK(obj_db_checkpoint(db, NULL));
    obj_bytes stat = {0};
    CHECK_OK(obj_db_stat_json(db, &stat));
    CHECK(stat.len > 0 && memmem(stat.data, stat.len, "\"page_size\":4096", 16) != NULL);
    CHECK(memmem(stat.data, stat.len, "$kv/meta", 8) != NULL);
    obj_bytes_free(&stat);
    CHECK_STATUS(obj_db_stat_json(db, NULL), OBJ_INVALID_ARGUMENT);
    obj_bytes report = {0};
    CHECK_OK(obj_db_integrity_check(db, &report));
    CHECK(report.len > 0);
    obj_bytes_free(&report);
    CHECK_OK(obj_db_integrity_check(db, NULL));

    /* A reader left open across close keeps working; the db refuses new work. */
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_db_close(db));
    CHECK_OK(obj_db_close(db));
    CHECK_STATUS(obj_txn_begin_read(db, &w), OBJ_CLOSED);
    CHECK_STATUS(obj_db_checkpoint(db, NULL), OBJ_CLOSED);
    CHECK_OK(obj_kv_get(r, "meta", (const uint8_t *)"k1", 2, &v, &found));
    CHECK(found);
    obj_bytes_free(&v);
    CHECK_OK(obj_txn_free(r));
    CHECK_OK(obj_db_free(db));
    CHECK_OK(obj_db_free(NULL));

    /* Reopen: the data survived, the WAL is gone after the clean close. */
    CHECK(access(wal, F_OK) != 0);
    CHECK_OK(obj_db_open(path, NULL, &db));
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_kv_get(r, "meta", NULL, 0, &v, &found));
    CHECK(found && v.len == 9 && memcmp(v.data, "empty key", 9) == 0);
    obj_bytes_free(&v);
    CHECK_OK(obj_txn_free(r));

    /* A write transaction left open across close may still commit; the
     * WAL is folded and removed once it is freed. */
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_kv_put(w, "meta", (const uint8_t *)"late", 4, (const uint8_t *)"v", 1));
    CHECK_OK(obj_db_close(db));
    CHECK_STATUS(obj_txn_begin_read(db, &r), OBJ_CLOSED);
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK(access(wal, F_OK) != 0);
    CHECK_OK(obj_db_free(db));
    CHECK_OK(obj_db_open(path, NULL, &db));
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_kv_get(r, "meta", (const uint8_t *)"late", 4, &v, &found));
    CHECK(found && v.len == 1);
    obj_bytes_free(&v);
    CHECK_OK(obj_txn_free(r));
    CHECK_OK(obj_db_free(db)); /* free without close closes */
}

static long file_size(const char *p) {
    FILE *f = fopen(p, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static void test_close_no_checkpoint(void) {
    /* An exit on error: the close skips the checkpoint, even as the last
     * handle, so the committed frames stay in the WAL; the next open
     * recovers them, and a clean close then folds and removes the WAL. */
    char p2[560], wal2[580];
    snprintf(p2, sizeof p2, "%s.nockpt", path);
    snprintf(wal2, sizeof wal2, "%s-wal", p2);
    unlink(p2);
    unlink(wal2);
    obj_db *db = NULL;
    CHECK_OK(obj_db_open(p2, NULL, &db));
    obj_txn *w = NULL;
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_kv_put(w, "meta", (const uint8_t *)"k", 1, (const uint8_t *)"kept", 4));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    long before = file_size(wal2);
    CHECK(before > 0);
    CHECK_OK(obj_db_close_no_checkpoint(db));
    CHECK_OK(obj_db_close_no_checkpoint(db)); /* twice is OK */
    CHECK_OK(obj_db_close(db));               /* and a close after it does not fold */
    CHECK_STATUS(obj_txn_begin_read(db, &w), OBJ_CLOSED);
    CHECK_OK(obj_db_free(db));
    CHECK(file_size(wal2) == before);
    CHECK_STATUS(obj_db_close_no_checkpoint(NULL), OBJ_INVALID_ARGUMENT);

    /* Reopen (the locks were released): the data is there. */
    CHECK_OK(obj_db_open(p2, NULL, &db));
    obj_txn *r = NULL;
    obj_bytes v = {0};
    bool found = false;
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_kv_get(r, "meta", (const uint8_t *)"k", 1, &v, &found));
    CHECK(found && v.len == 4 && memcmp(v.data, "kept", 4) == 0);
    obj_bytes_free(&v);
    CHECK_OK(obj_txn_free(r));
    CHECK_OK(obj_db_close(db));
    CHECK_OK(obj_db_free(db));
    CHECK(access(wal2, F_OK) != 0);
    unlink(p2);
}

static int has_bytes(const obj_bytes *b, const char *want) {
    size_t n = strlen(want);
    return b->len == n && memcmp(b->data, want, n) == 0;
}

static void test_one_call_reads(void) {
    /* obj_db_doc_get (a snapshot of its own), obj_doc_get_many_plain (no
     * versions), obj_find_unique without the version. */
    char p3[560];
    snprintf(p3, sizeof p3, "%s.reads", path);
    unlink(p3);
    obj_db *db = NULL;
    CHECK_OK(obj_db_open(p3, NULL, &db));
    obj_txn *w = NULL;
    uint64_t id = 0;
    const char *doc = "{\"email\":\"a@x\",\"n\":1}";
    const char *spec = "{\"name\":\"email\",\"kind\":\"unique\",\"fields\":[\"email\"]}";
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_doc_insert(w, "docs", (const uint8_t *)doc, strlen(doc), 7, &id));
    CHECK_OK(obj_index_create(w, "docs", (const uint8_t *)spec, strlen(spec)));
    CHECK_OK(obj_raw_insert(w, "blobs", (const uint8_t *)"xy", 2, &id));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));

    obj_bytes out = {0};
    uint32_t ver = 0;
    bool found = false;
    CHECK_OK(obj_db_doc_get(db, "docs", 1, &out, &ver, &found));
    CHECK(found && ver == 7 && has_bytes(&out, doc));
    obj_bytes_free(&out);
    CHECK_OK(obj_db_doc_get(db, "docs", 1, &out, NULL, &found));
    CHECK(found && has_bytes(&out, doc));
    obj_bytes_free(&out);
    CHECK_OK(obj_db_doc_get(db, "docs", 2, &out, NULL, &found));
    CHECK(!found && out.len == 0);
    CHECK_OK(obj_db_doc_get(db, "nothing", 1, &out, NULL, &found));
    CHECK(!found);
    CHECK_STATUS(obj_db_doc_get(db, "blobs", 1, &out, NULL, &found), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "raw bytes") != NULL);
    CHECK_STATUS(obj_db_doc_get(db, "docs", 1, NULL, NULL, &found), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_doc_get(db, NULL, 1, &out, NULL, &found), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_doc_get(NULL, "docs", 1, &out, NULL, &found), OBJ_INVALID_ARGUMENT);

    obj_txn *r = NULL;
    CHECK_OK(obj_txn_begin_read(db, &r));
    uint64_t ids[3] = {1, 5, 1};
    CHECK_OK(obj_doc_get_many_plain(r, "docs", ids, 3, &out));
    char want[200];
    snprintf(want, sizeof want, "[%s,null,%s]", doc, doc);
    CHECK(has_bytes(&out, want));
    obj_bytes_free(&out);
    CHECK_OK(obj_doc_get_many_plain(r, "docs", NULL, 0, &out));
    CHECK(has_bytes(&out, "[]"));
    obj_bytes_free(&out);
    CHECK_OK(obj_doc_get_many_plain(r, "nothing", ids, 2, &out));
    CHECK(has_bytes(&out, "[null,null]"));
    obj_bytes_free(&out);
    CHECK_STATUS(obj_doc_get_many_plain(r, "blobs", ids, 1, &out), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_get_many_plain(r, "docs", NULL, 2, &out), OBJ_INVALID_ARGUMENT);
    uint64_t got = 0;
    ver = 99;
    CHECK_OK(obj_find_unique(r, "docs", "email", (const uint8_t *)"[\"a@x\"]", 7, &got, &out, NULL, &found));
    CHECK(found && got == 1 && has_bytes(&out, doc) && ver == 99);
    obj_bytes_free(&out);
    CHECK_OK(obj_find_unique(r, "docs", "email", (const uint8_t *)"[\"a@x\"]", 7, &got, &out, &ver, &found));
    CHECK(found && ver == 7);
    obj_bytes_free(&out);
    const char *keys = "[[\"a@x\"],[\"b@x\"],[\"a@x\"]]";
    CHECK_OK(obj_find_unique_many(r, "docs", "email", (const uint8_t *)keys, strlen(keys), false, &out));
    snprintf(want, sizeof want, "[[1,%s],null,[1,%s]]", doc, doc);
    CHECK(has_bytes(&out, want));
    obj_bytes_free(&out);
    CHECK_OK(obj_find_unique_many(r, "docs", "email", (const uint8_t *)keys, strlen(keys), true, &out));
    snprintf(want, sizeof want, "[[1,7,%s],null,[1,7,%s]]", doc, doc);
    CHECK(has_bytes(&out, want));
    obj_bytes_free(&out);
    CHECK_OK(obj_find_unique_many(r, "nothing", "email", (const uint8_t *)"[[1]]", 5, false, &out));
    CHECK(has_bytes(&out, "[null]"));
    obj_bytes_free(&out);
    CHECK_STATUS(obj_find_unique_many(r, "docs", "email", (const uint8_t *)"[\"a@x\"]", 7, false, &out),
                 OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_find_unique_many(r, "docs", "email", (const uint8_t *)"{}", 2, false, &out),
                 OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_find_unique_many(r, "docs", "nope", (const uint8_t *)"[[1]]", 5, false, &out),
                 OBJ_NOT_FOUND);
    CHECK_STATUS(obj_find_unique_many(r, "docs", "email", (const uint8_t *)"[[1]]", 5, false, NULL),
                 OBJ_INVALID_ARGUMENT);
    const char *plain_keys = "[\"a@x\",\"b@x\",\"a@x\",[\"a@x\"]]";
    CHECK_OK(obj_find_unique_many_plain(r, "docs", "email", (const uint8_t *)plain_keys, strlen(plain_keys), &out));
    snprintf(want, sizeof want, "[%s,null,%s,null]", doc, doc); /* an array is one value, not a key's values */
    CHECK(has_bytes(&out, want));
    obj_bytes_free(&out);
    CHECK_OK(obj_find_unique_many_plain(r, "docs", "email", (const uint8_t *)"[]", 2, &out));
    CHECK(has_bytes(&out, "[]"));
    obj_bytes_free(&out);
    CHECK_OK(obj_find_unique_many_plain(r, "nothing", "email", (const uint8_t *)"[1]", 3, &out));
    CHECK(has_bytes(&out, "[null]"));
    obj_bytes_free(&out);
    CHECK_STATUS(obj_find_unique_many_plain(r, "docs", "email", (const uint8_t *)"{}", 2, &out),
                 OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_find_unique_many_plain(r, "docs", "email", (const uint8_t *)"[1", 2, &out),
                 OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_find_unique_many_plain(r, "docs", "nope", (const uint8_t *)"[1]", 3, &out), OBJ_NOT_FOUND);
    /* The index is checked for no keys too (review 16). */
    CHECK_STATUS(obj_find_unique_many_plain(r, "docs", "nope", (const uint8_t *)"[]", 2, &out), OBJ_NOT_FOUND);
    CHECK_STATUS(obj_find_unique_many(r, "docs", "nope", (const uint8_t *)"[]", 2, false, &out), OBJ_NOT_FOUND);
    CHECK_STATUS(obj_find_unique_many_plain(r, "blobs", "email", (const uint8_t *)"[1]", 3, &out),
                 OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_find_unique_many_plain(r, "docs", "email", NULL, 3, &out), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_find_unique_many_plain(r, "docs", "email", (const uint8_t *)"[1]", 3, NULL),
                 OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_free(r));

    CHECK_OK(obj_db_close(db));
    CHECK_STATUS(obj_db_doc_get(db, "docs", 1, &out, NULL, &found), OBJ_CLOSED);
    CHECK_OK(obj_db_free(db));
    unlink(p3);
}

static void test_db_index_create(void) {
    /* obj_db_index_create: an index built outside any transaction, in
     * batches; idempotent for the same spec; refusals as obj_index_create's. */
    char p7[560];
    snprintf(p7, sizeof p7, "%s.dbindex", path);
    unlink(p7);
    obj_db *db = NULL;
    CHECK_OK(obj_db_open(p7, NULL, &db));
    obj_txn *w = NULL;
    CHECK_OK(obj_txn_begin_write(db, &w));
    for (int i = 0; i < 2500; i++) {
        char doc[80];
        uint64_t id = 0;
        snprintf(doc, sizeof doc, "{\"e\":\"u%d@x\",\"n\":%d}", i, i % 10);
        CHECK_OK(obj_doc_insert(w, "users", (const uint8_t *)doc, strlen(doc), 0, &id));
    }
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
#define SPEC(s) (const uint8_t *)(s), strlen(s)
    const char *by_n = "{\"name\":\"by_n\",\"fields\":[\"n\"]}";
    CHECK_OK(obj_db_index_create(db, "users", SPEC(by_n)));
    CHECK_OK(obj_db_index_create(db, "users", SPEC(by_n))); /* the same again: done */
    CHECK_ERR(obj_db_index_create(db, "users", SPEC("{\"name\":\"by_n\",\"fields\":[\"e\"]}")),
              OBJ_INVALID_ARGUMENT, "another spec");
    /* A unique index over repeated values: refused, and no trace left. */
    CHECK_ERR(obj_db_index_create(db, "users", SPEC("{\"name\":\"u\",\"kind\":\"unique\",\"fields\":[\"n\"]}")),
              OBJ_CONSTRAINT, "");
    obj_txn *r = NULL;
    uint64_t k = 0;
    CHECK_OK(obj_txn_begin_read(db, &r));
    obj_bytes info = {0};
    CHECK_OK(obj_collection_info(r, "users", &info));
    CHECK(memmem(info.data, info.len, "\"by_n\"", 6) != NULL);
    CHECK(memmem(info.data, info.len, "\"u\"", 3) == NULL);
    obj_bytes_free(&info);
    const char *q = "{\"collection\":\"users\",\"filter\":{\"eq\":[\"n\",3]}}";
    obj_bytes plan = {0};
    CHECK_OK(obj_query_explain(r, (const uint8_t *)q, strlen(q), &plan));
    CHECK(memmem(plan.data, plan.len, "\"index\":\"by_n\"", 14) != NULL); /* ready: used */
    obj_bytes_free(&plan);
    CHECK_OK(obj_query_count(r, (const uint8_t *)q, strlen(q), &k));
    CHECK(k == 250);
    CHECK_OK(obj_txn_free(r));
    /* On a missing collection: made, with the index. */
    CHECK_OK(obj_db_index_create(db, "fresh", SPEC(by_n)));
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_collection_info(r, "fresh", &info));
    CHECK(memmem(info.data, info.len, "\"by_n\"", 6) != NULL);
    obj_bytes_free(&info);
    CHECK_OK(obj_txn_free(r));
    const char bad[] = {(char)0xff, 0};
    CHECK_STATUS(obj_db_index_create(NULL, "users", SPEC(by_n)), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_index_create(db, NULL, SPEC(by_n)), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_index_create(db, bad, SPEC(by_n)), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_index_create(db, "users", NULL, 5), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_index_create(db, "users", SPEC("{\"name\":")), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_db_close(db));
    CHECK_STATUS(obj_db_index_create(db, "users", SPEC(by_n)), OBJ_CLOSED);
#undef SPEC
    CHECK_OK(obj_db_free(db));
    unlink(p7);
}

static void test_kv_count(void) {
    /* obj_kv_count: the entries of a namespace as the transaction sees
     * them, 0 for a missing one; refusals as every call's. */
    char p6[560];
    snprintf(p6, sizeof p6, "%s.kvcount", path);
    unlink(p6);
    obj_db *db = NULL;
    CHECK_OK(obj_db_open(p6, NULL, &db));
    obj_txn *w = NULL, *r = NULL;
    uint64_t n = 99;
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_kv_count(r, "ns", &n));
    CHECK(n == 0);
    CHECK_OK(obj_txn_begin_write(db, &w));
    for (int i = 0; i < 5; i++) {
        uint8_t k = (uint8_t)i;
        CHECK_OK(obj_kv_put(w, "ns", &k, 1, &k, 1));
    }
    CHECK_OK(obj_kv_put(w, "ns", (const uint8_t *)"\0", 1, (const uint8_t *)"again", 5)); /* replaces key 0 */
    CHECK_OK(obj_kv_count(w, "ns", &n));
    CHECK(n == 5); /* its own writes */
    CHECK_OK(obj_kv_count(r, "ns", &n));
    CHECK(n == 0); /* the older snapshot */
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_txn_free(r));
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_kv_count(r, "ns", &n));
    CHECK(n == 5);
    CHECK_OK(obj_kv_count(r, "other", &n));
    CHECK(n == 0);
    const char bad[] = {(char)0xff, 0};
    CHECK_STATUS(obj_kv_count(r, "ns", NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_count(r, NULL, &n), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_count(r, bad, &n), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_count(NULL, "ns", &n), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_commit(r)); /* ends it */
    CHECK_STATUS(obj_kv_count(r, "ns", &n), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_free(r));
    CHECK_OK(obj_db_free(db));
    unlink(p6);
}

static void test_one_call_raw_kv_count(void) {
    /* obj_db_raw_get, obj_db_kv_get, obj_db_count: a snapshot of their own,
     * each as its transaction call: the last commit (of any handle), the
     * other kind refused, a missing collection or namespace empty. */
    char p5[560];
    snprintf(p5, sizeof p5, "%s.onecall", path);
    unlink(p5);
    obj_db *db = NULL, *other = NULL;
    CHECK_OK(obj_db_open(p5, NULL, &db));
    CHECK_OK(obj_db_open(p5, NULL, &other));
    obj_txn *w = NULL;
    uint64_t id = 0;
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_doc_insert(w, "docs", (const uint8_t *)"{\"a\":1}", 7, 0, &id));
    CHECK_OK(obj_doc_insert(w, "docs", (const uint8_t *)"{\"a\":2}", 7, 0, &id));
    CHECK_OK(obj_raw_insert(w, "blobs", (const uint8_t *)"xy", 2, &id));
    CHECK_OK(obj_raw_insert(w, "blobs", (const uint8_t *)"", 0, &id));
    CHECK_OK(obj_kv_put(w, "ns", (const uint8_t *)"k", 1, (const uint8_t *)"v1", 2));
    CHECK_OK(obj_kv_put(w, "ns", (const uint8_t *)"", 0, (const uint8_t *)"", 0));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));

    obj_bytes out = {0};
    bool found = false;
    uint64_t n = 99;
    const char bad[] = {(char)0xff, 0};

    /* obj_db_raw_get */
    CHECK_OK(obj_db_raw_get(db, "blobs", 1, &out, &found));
    CHECK(found && has_bytes(&out, "xy"));
    obj_bytes_free(&out);
    found = false;
    CHECK_OK(obj_db_raw_get(db, "blobs", 2, &out, &found));
    CHECK(found && out.len == 0);
    obj_bytes_free(&out);
    CHECK_OK(obj_db_raw_get(db, "blobs", 3, &out, &found));
    CHECK(!found && out.data == NULL && out.len == 0);
    CHECK_OK(obj_db_raw_get(db, "nothing", 1, &out, &found));
    CHECK(!found);
    CHECK_ERR(obj_db_raw_get(db, "docs", 1, &out, &found), OBJ_INVALID_ARGUMENT, "structured documents");
    CHECK_STATUS(obj_db_raw_get(db, "blobs", 1, NULL, &found), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_raw_get(db, "blobs", 1, &out, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_raw_get(db, NULL, 1, &out, &found), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_raw_get(db, bad, 1, &out, &found), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_raw_get(NULL, "blobs", 1, &out, &found), OBJ_INVALID_ARGUMENT);

    /* obj_db_kv_get */
    CHECK_OK(obj_db_kv_get(db, "ns", (const uint8_t *)"k", 1, &out, &found));
    CHECK(found && has_bytes(&out, "v1"));
    obj_bytes_free(&out);
    found = false;
    CHECK_OK(obj_db_kv_get(db, "ns", NULL, 0, &out, &found)); /* the empty key */
    CHECK(found && out.len == 0);
    obj_bytes_free(&out);
    CHECK_OK(obj_db_kv_get(db, "ns", (const uint8_t *)"zz", 2, &out, &found));
    CHECK(!found && out.data == NULL && out.len == 0);
    CHECK_OK(obj_db_kv_get(db, "nothing", (const uint8_t *)"k", 1, &out, &found));
    CHECK(!found);
    static uint8_t long_key[70000];
    memset(long_key, 'k', sizeof long_key);
    CHECK_OK(obj_db_kv_get(db, "ns", long_key, sizeof long_key, &out, &found)); /* over the limit: missing */
    CHECK(!found);
    CHECK_STATUS(obj_db_kv_get(db, "ns", NULL, 1, &out, &found), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_kv_get(db, "ns", (const uint8_t *)"k", 1, NULL, &found), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_kv_get(db, "ns", (const uint8_t *)"k", 1, &out, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_kv_get(db, NULL, (const uint8_t *)"k", 1, &out, &found), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_kv_get(db, bad, (const uint8_t *)"k", 1, &out, &found), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_kv_get(NULL, "ns", (const uint8_t *)"k", 1, &out, &found), OBJ_INVALID_ARGUMENT);

    /* obj_db_count: documents of either kind, 0 for a missing collection */
    CHECK_OK(obj_db_count(db, "docs", &n));
    CHECK(n == 2);
    CHECK_OK(obj_db_count(db, "blobs", &n));
    CHECK(n == 2);
    n = 99;
    CHECK_OK(obj_db_count(db, "nothing", &n));
    CHECK(n == 0);
    CHECK_STATUS(obj_db_count(db, "docs", NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_count(db, NULL, &n), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_count(db, bad, &n), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_count(NULL, "docs", &n), OBJ_INVALID_ARGUMENT);
    /* A transaction handle is not a database handle. */
    obj_txn *r = NULL;
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_STATUS(obj_db_count((obj_db *)r, "docs", &n), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_raw_get((obj_db *)r, "blobs", 1, &out, &found), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_kv_get((obj_db *)r, "ns", (const uint8_t *)"k", 1, &out, &found), OBJ_INVALID_ARGUMENT);

    /* Another handle swaps the kinds and drops the namespace: each call
     * reads the new commit, while the older snapshot `r` still reads the
     * old one. */
    CHECK_OK(obj_txn_begin_write(other, &w));
    CHECK_OK(obj_collection_drop(w, "docs", NULL));
    CHECK_OK(obj_collection_drop(w, "blobs", NULL));
    CHECK_OK(obj_raw_insert(w, "docs", (const uint8_t *)"r", 1, &id));
    CHECK_OK(obj_doc_insert(w, "blobs", (const uint8_t *)"{}", 2, 0, &id));
    CHECK_OK(obj_kv_drop(w, "ns", NULL));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_db_raw_get(db, "docs", 1, &out, &found));
    CHECK(found && has_bytes(&out, "r"));
    obj_bytes_free(&out);
    CHECK_ERR(obj_db_raw_get(db, "blobs", 1, &out, &found), OBJ_INVALID_ARGUMENT, "structured documents");
    CHECK_OK(obj_db_kv_get(db, "ns", (const uint8_t *)"k", 1, &out, &found));
    CHECK(!found);
    CHECK_OK(obj_db_count(db, "docs", &n));
    CHECK(n == 1);
    CHECK_OK(obj_raw_get(r, "blobs", 1, &out, &found));
    CHECK(found && has_bytes(&out, "xy"));
    obj_bytes_free(&out);
    CHECK_OK(obj_kv_get(r, "ns", (const uint8_t *)"k", 1, &out, &found));
    CHECK(found && has_bytes(&out, "v1"));
    obj_bytes_free(&out);
    CHECK_OK(obj_txn_free(r));

    CHECK_OK(obj_db_close(other));
    CHECK_OK(obj_db_free(other));
    CHECK_OK(obj_db_close(db));
    CHECK_STATUS(obj_db_raw_get(db, "docs", 1, &out, &found), OBJ_CLOSED);
    CHECK_STATUS(obj_db_kv_get(db, "ns", (const uint8_t *)"k", 1, &out, &found), OBJ_CLOSED);
    CHECK_STATUS(obj_db_count(db, "docs", &n), OBJ_CLOSED);
    CHECK_OK(obj_db_free(db));
    unlink(p5);
}

static void test_one_call_writes(void) {
    /* obj_db_doc_insert / obj_db_doc_upsert: begin, write and commit in
     * one call; an error leaves nothing behind. */
    char p4[560];
    snprintf(p4, sizeof p4, "%s.writes", path);
    unlink(p4);
    obj_db *db = NULL;
    obj_options o;
    obj_options_init(&o);
    o.busy_timeout_ms = 50;
    CHECK_OK(obj_db_open(p4, &o, &db));
    const char *spec = "{\"name\":\"email\",\"kind\":\"unique\",\"fields\":[\"email\"]}";
    const char *a = "{\"email\":\"a@x\"}", *b = "{\"email\":\"b@x\"}";
    uint64_t id = 0;
    bool created = false, found = false;
    obj_bytes out = {0};
    uint32_t ver = 0;
    /* The collection is created on first use, as in a transaction. */
    CHECK_OK(obj_db_doc_insert(db, "docs", (const uint8_t *)a, strlen(a), 3, &id));
    CHECK(id == 1);
    obj_txn *w = NULL;
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_index_create(w, "docs", (const uint8_t *)spec, strlen(spec)));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_db_doc_upsert(db, "docs", 10, (const uint8_t *)b, strlen(b), 4, &created));
    CHECK(created);
    CHECK_OK(obj_db_doc_upsert(db, "docs", 10, (const uint8_t *)b, strlen(b), 5, NULL));
    CHECK_OK(obj_db_doc_get(db, "docs", 10, &out, &ver, &found));
    CHECK(found && ver == 5 && has_bytes(&out, b));
    obj_bytes_free(&out);
    CHECK_OK(obj_db_doc_insert(db, "docs", (const uint8_t *)"{}", 2, 0, &id));
    CHECK(id == 11);
    /* A unique violation, bad JSON, a raw collection: errors, nothing written. */
    CHECK_STATUS(obj_db_doc_insert(db, "docs", (const uint8_t *)a, strlen(a), 0, &id), OBJ_CONSTRAINT);
    CHECK(strstr(obj_last_error(), "email") != NULL);
    CHECK_STATUS(obj_db_doc_upsert(db, "docs", 12, (const uint8_t *)b, strlen(b), 0, &created), OBJ_CONSTRAINT);
    CHECK_OK(obj_db_doc_get(db, "docs", 12, &out, NULL, &found));
    CHECK(!found);
    CHECK_STATUS(obj_db_doc_insert(db, "docs", (const uint8_t *)"{\"a\":", 5, 0, &id), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_doc_insert(db, "docs", (const uint8_t *)"[1]", 3, 0, &id), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_raw_insert(w, "blobs", (const uint8_t *)"xy", 2, &id));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK_STATUS(obj_db_doc_upsert(db, "blobs", 1, (const uint8_t *)"{}", 2, 0, NULL), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "raw") != NULL);
    uint64_t before = 0;
    CHECK_OK(obj_txn_begin_read(db, &w));
    CHECK_OK(obj_collection_count(w, "docs", &before));
    CHECK_OK(obj_txn_free(w));
    CHECK(before == 3);
    /* Another writer holds the lock: OBJ_BUSY after the busy timeout. */
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_STATUS(obj_db_doc_insert(db, "docs", (const uint8_t *)"{}", 2, 0, &id), OBJ_BUSY);
    CHECK_OK(obj_txn_free(w));
    /* Bad arguments. */
    CHECK_STATUS(obj_db_doc_insert(NULL, "docs", (const uint8_t *)"{}", 2, 0, &id), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_doc_insert(db, NULL, (const uint8_t *)"{}", 2, 0, &id), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_doc_insert(db, "docs", NULL, 2, 0, &id), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_doc_insert(db, "docs", (const uint8_t *)"{}", 2, 0, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_doc_insert(db, "\xff", (const uint8_t *)"{}", 2, 0, &id), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_doc_upsert(NULL, "docs", 1, (const uint8_t *)"{}", 2, 0, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_doc_upsert(db, "docs", 1, (const uint8_t *)"\xff", 1, 0, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_begin_read(db, &w));
    uint64_t after = 0;
    CHECK_OK(obj_collection_count(w, "docs", &after));
    CHECK_OK(obj_txn_free(w));
    CHECK(after == before);
    CHECK_OK(obj_db_close(db));
    CHECK_STATUS(obj_db_doc_insert(db, "docs", (const uint8_t *)"{}", 2, 0, &id), OBJ_CLOSED);
    CHECK_STATUS(obj_db_doc_upsert(db, "docs", 1, (const uint8_t *)"{}", 2, 0, NULL), OBJ_CLOSED);
    CHECK_OK(obj_db_free(db));
    /* Every acknowledged write is in the file after a reopen. */
    CHECK_OK(obj_db_open(p4, NULL, &db));
    CHECK_OK(obj_db_doc_get(db, "docs", 11, &out, NULL, &found));
    CHECK(found && has_bytes(&out, "{}"));
    obj_bytes_free(&out);
    CHECK_OK(obj_db_close(db));
    CHECK_OK(obj_db_free(db));
    unlink(p4);
}

static uint64_t catalog_version(obj_db *db) {
    obj_txn *r = NULL;
    uint64_t v = 0;
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_txn_catalog_version(r, &v));
    CHECK_OK(obj_txn_free(r));
    return v;
}

static void test_catalog_version(void) {
    /* The catalog version counts collections and indexes created and
     * dropped; obj_db_doc_insert_if / _upsert_if write only at the version
     * the caller names, so a binding's cached set-up is never used blind. */
    char p5[560];
    snprintf(p5, sizeof p5, "%s.catalog", path);
    unlink(p5);
    obj_db *db = NULL, *other = NULL;
    CHECK_OK(obj_db_open(p5, NULL, &db));
    CHECK_OK(obj_db_open(p5, NULL, &other));
    uint64_t v0 = catalog_version(db), id = 0, v = 0;
    bool done = true, created = false, found = false;
    const char *a = "{\"email\":\"a@x\"}";
    /* At another version: nothing written, no collection made. */
    id = 12345;
    CHECK_OK(obj_db_doc_insert_if(db, "docs", (const uint8_t *)a, strlen(a), 0, v0 + 1, &id, &done));
    CHECK(!done);
    CHECK(id == 12345); /* nothing written, out_id neither */
    CHECK(catalog_version(db) == v0);
    /* A write transaction sees its own creates. */
    obj_txn *w = NULL;
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_collection_create(w, "docs", 0));
    CHECK_OK(obj_txn_catalog_version(w, &v));
    CHECK(v > v0);
    const char *spec = "{\"name\":\"email\",\"kind\":\"unique\",\"fields\":[\"email\"]}";
    CHECK_OK(obj_index_create(w, "docs", (const uint8_t *)spec, strlen(spec)));
    uint64_t v1 = 0;
    CHECK_OK(obj_txn_catalog_version(w, &v1));
    CHECK(v1 > v);
    CHECK_OK(obj_txn_commit(w));
    CHECK_STATUS(obj_txn_catalog_version(w, &v), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_free(w));
    CHECK(catalog_version(db) == v1 && catalog_version(other) == v1);
    /* Writes (no catalog change) keep the version. */
    CHECK_OK(obj_db_doc_insert_if(db, "docs", (const uint8_t *)a, strlen(a), 0, v1, &id, &done));
    CHECK(done && id == 1);
    CHECK_OK(obj_db_doc_upsert_if(db, "docs", 5, (const uint8_t *)"{}", 2, 2, v1, &created, &done));
    CHECK(done && created);
    CHECK(catalog_version(db) == v1);
    /* Another handle drops the collection and makes it again, without the
     * index: a write at the old version is refused, nothing written. */
    CHECK_OK(obj_txn_begin_write(other, &w));
    CHECK_OK(obj_collection_drop(w, "docs", &found));
    CHECK_OK(obj_collection_create(w, "docs", 0));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    uint64_t v2 = catalog_version(db);
    CHECK(v2 > v1);
    done = true;
    CHECK_OK(obj_db_doc_insert_if(db, "docs", (const uint8_t *)a, strlen(a), 0, v1, &id, &done));
    CHECK(!done);
    done = true;
    CHECK_OK(obj_db_doc_upsert_if(db, "docs", 7, (const uint8_t *)a, strlen(a), 0, v1, NULL, &done));
    CHECK(!done);
    uint64_t n = 9;
    CHECK_OK(obj_txn_begin_read(db, &w));
    CHECK_OK(obj_collection_count(w, "docs", &n));
    CHECK_OK(obj_txn_free(w));
    CHECK(n == 0);
    /* Errors of the write itself come as from obj_db_doc_insert. */
    CHECK_STATUS(obj_db_doc_insert_if(db, "docs", (const uint8_t *)"[1]", 3, 0, v2, &id, &done),
                 OBJ_INVALID_ARGUMENT);
    /* Bad arguments. */
    CHECK_STATUS(obj_db_doc_insert_if(db, "docs", (const uint8_t *)a, strlen(a), 0, v2, &id, NULL),
                 OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_doc_insert_if(db, "docs", (const uint8_t *)a, strlen(a), 0, v2, NULL, &done),
                 OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_doc_upsert_if(db, "docs", 1, (const uint8_t *)a, strlen(a), 0, v2, NULL, NULL),
                 OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_doc_insert_if(NULL, "docs", (const uint8_t *)a, strlen(a), 0, v2, &id, &done),
                 OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_txn_catalog_version(NULL, &v), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_begin_read(db, &w));
    CHECK_STATUS(obj_txn_catalog_version(w, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_db_close(other));
    CHECK_OK(obj_db_free(other));
    CHECK_OK(obj_db_close(db));
    CHECK_STATUS(obj_db_doc_insert_if(db, "docs", (const uint8_t *)a, strlen(a), 0, v2, &id, &done), OBJ_CLOSED);
    CHECK_OK(obj_db_free(db));
    /* The version is in the file: a reopen reads it back. */
    CHECK_OK(obj_db_open(p5, NULL, &db));
    CHECK(catalog_version(db) == v2);
    CHECK_OK(obj_db_close(db));
    CHECK_OK(obj_db_free(db));
    unlink(p5);
}

static void test_corrupt_file(void) {
    /* Damage a page in the middle: reading it is OBJ_CORRUPTION, never a crash. */
    FILE *f = fopen(path, "r+b");
    fseek(f, 4096 + 100, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    obj_db *db = NULL;
    obj_status st = obj_db_open(path, NULL, &db);
    if (st == OBJ_OK) {
        CHECK_STATUS(obj_db_integrity_check(db, NULL), OBJ_INTEGRITY);
        CHECK(strstr(obj_last_error(), "checksum") != NULL);
        obj_db_free(db);
    } else {
        CHECK(st == OBJ_CORRUPTION);
    }
}

/* A child process after fork() must not use its parent's handles: every
 * call on them is refused with a message naming fork() (never a read of
 * the parent's locks or a write into its files), the handles can still be
 * freed, rolled back and (read transactions) committed in the child, which
 * only releases its copy, and the child opens the database itself. */
static void test_fork_child(void) {
    char p[600];
    snprintf(p, sizeof p, "%s.fork", path);
    unlink(p);
    obj_db *db = NULL;
    obj_txn *r = NULL, *w = NULL;
    uint64_t id = 0;
    CHECK_OK(obj_db_open(p, NULL, &db));
    CHECK_OK(obj_db_doc_insert(db, "c", (const uint8_t *)"{\"a\":1}", 7, 0, &id));
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_doc_insert(w, "c", (const uint8_t *)"{\"parent\":1}", 12, 0, &id));
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        obj_txn *t = NULL;
        obj_bytes b = {0};
        bool found = false;
        CHECK_ERR(obj_txn_begin_read(db, &t), OBJ_INVALID_ARGUMENT, "fork()");
        CHECK_ERR(obj_txn_begin_write(db, &t), OBJ_INVALID_ARGUMENT, "fork()");
        CHECK_ERR(obj_db_doc_get(db, "c", 1, &b, NULL, &found), OBJ_INVALID_ARGUMENT, "fork()");
        CHECK_ERR(obj_db_checkpoint(db, NULL), OBJ_INVALID_ARGUMENT, "fork()");
        CHECK_ERR(obj_doc_get(r, "c", 1, &b, NULL, &found), OBJ_INVALID_ARGUMENT, "fork()");
        CHECK_ERR(obj_doc_insert(w, "c", (const uint8_t *)"{\"child\":1}", 11, 0, &id), OBJ_INVALID_ARGUMENT, "fork()");
        CHECK_ERR(obj_txn_commit(w), OBJ_INVALID_ARGUMENT, "fork()");
        /* Ending without writing only releases the child's copy. */
        CHECK_OK(obj_txn_commit(r));
        CHECK_ERR(obj_doc_get(r, "c", 1, &b, NULL, &found), OBJ_INVALID_ARGUMENT, "transaction already ended");
        CHECK_OK(obj_txn_rollback(w));
        CHECK_ERR(obj_txn_rollback(w), OBJ_INVALID_ARGUMENT, "rolled back");
        CHECK_OK(obj_txn_free(w));
        CHECK_OK(obj_txn_free(r));
        CHECK_OK(obj_db_free(db));
        obj_db *own = NULL;
        CHECK_OK(obj_db_open(p, NULL, &own));
        CHECK_OK(obj_db_doc_get(own, "c", 1, &b, NULL, &found));
        CHECK(found);
        obj_bytes_free(&b);
        CHECK_OK(obj_db_free(own));
        fflush(NULL);
        _exit(0);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The parent's transaction is untouched by the child. */
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_txn_free(r));
    uint64_t n = 0;
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_collection_count(r, "c", &n));
    CHECK(n == 2);
    CHECK_OK(obj_txn_free(r));
    CHECK_OK(obj_db_integrity_check(db, NULL));
    CHECK_OK(obj_db_free(db));
    /* A second handle in this process shares the first one's engine: the
     * same sync mode and key. A writer beside a read-only engine opens the
     * file anew, as another process would. */
    obj_options o;
    CHECK_OK(obj_options_init(&o));
    CHECK_OK(obj_db_open(p, NULL, &db));
    obj_db *second = NULL;
    o.sync_mode = 1;
    CHECK_ERR(obj_db_open(p, &o, &second), OBJ_INVALID_ARGUMENT, "sync mode");
    o.sync_mode = 0;
    uint8_t key[32] = {1};
    o.encryption_key = key;
    CHECK_STATUS(obj_db_open(p, &o, &second), OBJ_ENCRYPTION);
    o.encryption_key = NULL;
    CHECK_OK(obj_db_open(p, &o, &second));
    CHECK_OK(obj_db_free(second));
    CHECK_OK(obj_db_free(db));
    o.read_only = true;
    CHECK_OK(obj_db_open(p, &o, &db));
    CHECK_OK(obj_db_open(p, NULL, &second));
    w = NULL;
    CHECK_OK(obj_txn_begin_write(second, &w));
    CHECK_OK(obj_kv_put(w, "beside", (const uint8_t *)"k", 1, (const uint8_t *)"v", 1));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_db_free(second));
    r = NULL;
    n = 0;
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_kv_count(r, "beside", &n));
    CHECK(n == 1);
    CHECK_OK(obj_txn_free(r));
    CHECK_OK(obj_db_free(db));
    unlink(p);
    snprintf(p, sizeof p, "%s.fork-shm", path);
    unlink(p);
    snprintf(p, sizeof p, "%s.fork-wal", path);
    unlink(p);
}

/* A write transaction past max_dirty_bytes writes its oldest changed pages
 * to the WAL ahead of the commit, and still commits or rolls back whole. */
static void record(uint32_t i, int round, uint8_t key[8], uint8_t val[100]) {
    uint32_t spread = i * 2654435761u;
    memcpy(key, &spread, 4);
    memcpy(key + 4, &i, 4);
    memset(val, (int)(i + (uint32_t)round) & 0xff, 100);
}

static int all_records_are(obj_db *db, int round) {
    obj_txn *r = NULL;
    if (obj_txn_begin_read(db, &r) != OBJ_OK) return 0;
    int ok = 1;
    for (uint32_t i = 0; i < 20000 && ok; i += 7) {
        uint8_t key[8], val[100];
        record(i, round, key, val);
        obj_bytes v = {0};
        bool found = false;
        ok = obj_kv_get(r, "big", key, sizeof key, &v, &found) == OBJ_OK && found && v.len == 100 &&
             memcmp(v.data, val, 100) == 0;
        obj_bytes_free(&v);
    }
    obj_txn_free(r);
    return ok;
}

static void test_large_transaction(void) {
    char p[600], pw[610];
    snprintf(p, sizeof p, "%s-big", path);
    snprintf(pw, sizeof pw, "%s-wal", p);
    unlink(p);
    obj_db *db = NULL;
    obj_options o;
    obj_options_init(&o);
    CHECK(o.max_dirty_bytes == 0);
    o.max_dirty_bytes = 64 * 4096;
    CHECK_OK(obj_db_open(p, &o, &db));
    for (int round = 0; round < 3; round++) {
        obj_txn *w = NULL;
        CHECK_OK(obj_txn_begin_write(db, &w));
        int ok = 1;
        for (uint32_t i = 0; i < 20000 && ok; i++) {
            uint8_t key[8], val[100];
            record(i, round, key, val);
            ok = obj_kv_put(w, "big", key, sizeof key, val, sizeof val) == OBJ_OK;
        }
        CHECK(ok);
        /* It reads its own writes; the pages went to the WAL already. */
        uint8_t key[8], val[100];
        record(4321, round, key, val);
        obj_bytes v = {0};
        bool found = false;
        CHECK_OK(obj_kv_get(w, "big", key, sizeof key, &v, &found));
        CHECK(found && v.len == 100 && memcmp(v.data, val, 100) == 0);
        obj_bytes_free(&v);
        struct stat st;
        CHECK(stat(pw, &st) == 0 && st.st_size > 200 * 4096);
        if (round == 1) {
            CHECK_OK(obj_txn_rollback(w));
        } else {
            CHECK_OK(obj_txn_commit(w));
        }
        CHECK_OK(obj_txn_free(w));
        CHECK(all_records_are(db, round == 1 ? 0 : round));
    }
    CHECK_OK(obj_db_close(db));
    CHECK_OK(obj_db_free(db));
    db = NULL;
    CHECK_OK(obj_db_open(p, NULL, &db));
    CHECK(all_records_are(db, 2));
    CHECK_OK(obj_db_free(db));
    unlink(p);
    unlink(pw);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    snprintf(path, sizeof path, "%s/c-api-%d.obj", dir, (int)getpid());
    snprintf(wal, sizeof wal, "%s-wal", path);
    unlink(path);
    unlink(wal);
    test_version_and_errors();
    test_open_errors();
    test_busy_behind_own_writer();
    test_kv_and_transactions();
    test_large_transaction();
    test_close_no_checkpoint();
    test_one_call_reads();
    test_one_call_raw_kv_count();
    test_kv_count();
    test_db_index_create();
    test_one_call_writes();
    test_catalog_version();
    test_corrupt_file();
    test_fork_child();
    unlink(path);
    unlink(wal);
    printf("c api: %d passed, 0 failed\n", checks_run);
    return 0;
}
