#define _GNU_SOURCE
/* Hostile input through the C ABI: NULL and wrong-kind handles, NULL
 * out-pointers and strings, invalid UTF-8, oversized keys and index values,
 * malformed and deeply nested JSON, files that are not (or no longer) a
 * database, a WAL of another database, closed databases and finished
 * transactions. Each call must return its documented status with a message
 * (read through obj_last_error) that says what was wrong, never
 * OBJ_INTERNAL or a crash, and the database must stay intact: after every
 * group it reopens, reads the earlier data and passes integrity_check. */
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include "check.h"

#define U8(s) ((const uint8_t *)(s))
#define JSON(s) U8(s), strlen(s)

/* The longest key for 4096-byte pages (engine/src/btree/tree.rs, max_key_len). */
#define MAX_KEY 1341

static char dir[400];
static char path[512];
static char wal[520];

static void path_in_dir(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static void write_file(const char *p, const void *data, size_t len) {
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL);
    CHECK(len == 0 || fwrite(data, 1, len, f) == len);
    CHECK(fclose(f) == 0);
}


/* A string of `n` copies of `unit` followed by `tail` copies of `close`. */
static char *repeat(const char *unit, size_t n, const char *middle, const char *close, size_t tail) {
    size_t ul = strlen(unit), ml = strlen(middle), cl = strlen(close);
    char *s = malloc(ul * n + ml + cl * tail + 1);
    CHECK(s != NULL);
    char *p = s;
    for (size_t i = 0; i < n; i++, p += ul) memcpy(p, unit, ul);
    memcpy(p, middle, ml);
    p += ml;
    for (size_t i = 0; i < tail; i++, p += cl) memcpy(p, close, cl);
    *p = 0;
    return s;
}

static obj_db *open_db(const char *p) {
    obj_db *db = NULL;
    obj_options o;
    CHECK_OK(obj_options_init(&o));
    o.busy_timeout_ms = 100;
    CHECK_OK(obj_db_open(p, &o, &db));
    return db;
}

/* The sample: 30 users with a unique index on email, a kv entry. */
static void make_sample(void) {
    obj_db *db = open_db(path);
    obj_txn *w = NULL;
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_index_create(w, "users", JSON("{\"name\":\"by_email\",\"kind\":\"unique\",\"fields\":[\"email\"]}")));
    for (int i = 0; i < 30; i++) {
        char doc[512];
        snprintf(doc, sizeof doc, "{\"email\":\"u%d@x\",\"n\":%d,\"pad\":\"%0*d\"}", i, i, 300, i);
        uint64_t id = 0;
        CHECK_OK(obj_doc_insert(w, "users", JSON(doc), 0, &id));
        CHECK(id == (uint64_t)i + 1);
    }
    CHECK_OK(obj_kv_put(w, "meta", U8("k"), 1, U8("v"), 1));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_db_free(db));
}

/* The sample (plus `extra_kv` more keys in "meta") reads back and the file
 * passes integrity_check. */
static void check_intact_db(obj_db *db, uint64_t extra_kv) {
    CHECK_OK(obj_db_integrity_check(db, NULL));
    obj_txn *r = NULL;
    CHECK_OK(obj_txn_begin_read(db, &r));
    uint64_t n = 0;
    CHECK_OK(obj_collection_count(r, "users", &n));
    CHECK(n == 30);
    for (int i = 0; i < 30; i += 7) {
        char values[32];
        snprintf(values, sizeof values, "[\"u%d@x\"]", i);
        uint64_t id = 0;
        obj_bytes doc = {0};
        bool found = false;
        CHECK_OK(obj_find_unique(r, "users", "by_email", JSON(values), &id, &doc, NULL, &found));
        CHECK(found && id == (uint64_t)i + 1);
        char want[32];
        snprintf(want, sizeof want, "\"n\":%d", i);
        CHECK(memmem(doc.data, doc.len, want, strlen(want)) != NULL);
        obj_bytes_free(&doc);
    }
    obj_bytes v = {0};
    bool found = false;
    CHECK_OK(obj_kv_get(r, "meta", U8("k"), 1, &v, &found));
    CHECK(found && v.len == 1 && v.data[0] == 'v');
    obj_bytes_free(&v);
    obj_cursor *cur = NULL;
    CHECK_OK(obj_kv_scan(r, "meta", NULL, 0, NULL, 0, NULL, 0, false, &cur));
    uint64_t keys = 0;
    for (;;) {
        obj_bytes k = {0}, val = {0};
        bool done = false;
        CHECK_OK(obj_kv_cursor_next(cur, &k, &val, &done));
        if (done) break;
        keys++;
        obj_bytes_free(&k);
        obj_bytes_free(&val);
    }
    CHECK(keys == 1 + extra_kv);
    CHECK_OK(obj_cursor_free(cur));
    CHECK_OK(obj_txn_free(r));
}

static void check_intact(uint64_t extra_kv) {
    obj_db *db = open_db(path);
    check_intact_db(db, extra_kv);
    CHECK_OK(obj_db_free(db));
}

static void test_null_and_wrong_kind_handles(void) {
    size_t count = 0;
    obj_db *db = open_db(path);
    obj_txn *w = NULL, *r = NULL;
    obj_cursor *cur = NULL;
    obj_bytes out = {0};
    uint64_t id = 0, n = 0;
    bool found = false, done = false;

    /* NULL handles: every kind of call. */
    CHECK_ERR(obj_txn_begin_read(NULL, &r), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_txn_begin_write(NULL, &w), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_db_checkpoint(NULL, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_db_stat_json(NULL, &out), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_db_integrity_check(NULL, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_db_compact(NULL, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_db_close(NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_txn_commit(NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_txn_rollback(NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_doc_insert(NULL, "users", JSON("{}"), 0, &id), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_doc_get(NULL, "users", 1, &out, NULL, &found), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_kv_put(NULL, "meta", U8("k"), 1, U8("v"), 1), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_query(NULL, JSON("{\"collection\":\"users\"}"), &cur), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_cursor_next(NULL, &id, &out, NULL, &done), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_kv_cursor_next(NULL, &out, &out, &done), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_cursor_next_batch(NULL, 1, &out), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_cursor_next_batch_columns(NULL, 1, false, &out), OBJ_INVALID_ARGUMENT, "NULL");
    /* Freeing NULL is a no-op. */
    CHECK_OK(obj_db_free(NULL));
    CHECK_OK(obj_txn_free(NULL));
    CHECK_OK(obj_cursor_free(NULL));

    /* Wrong kinds: each handle passed where another is expected, and a
     * pointer to memory the library never handed out (all zeros, all ones). */
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_query(r, JSON("{\"collection\":\"users\"}"), &cur));
    static uint64_t fake_zero[16];
    static uint64_t fake_ones[16] = {~0ull, ~0ull, ~0ull, ~0ull};
    CHECK_ERR(obj_txn_commit((obj_txn *)db), OBJ_INVALID_ARGUMENT, "not a valid transaction handle");
    /* The message promises no detection of freed handles (undefined behaviour). */
    CHECK(strstr(obj_last_error(), "another kind") && !strstr(obj_last_error(), "freed"));
    CHECK_ERR(obj_txn_commit((obj_txn *)cur), OBJ_INVALID_ARGUMENT, "not a valid transaction handle");
    CHECK_ERR(obj_txn_begin_read((obj_db *)r, &w), OBJ_INVALID_ARGUMENT, "not a valid database handle");
    CHECK_ERR(obj_db_checkpoint((obj_db *)cur, NULL), OBJ_INVALID_ARGUMENT, "not a valid database handle");
    CHECK_ERR(obj_cursor_next((obj_cursor *)r, &id, &out, NULL, &done), OBJ_INVALID_ARGUMENT, "not a valid cursor handle");
    CHECK_ERR(obj_doc_get((obj_txn *)fake_zero, "users", 1, &out, NULL, &found), OBJ_INVALID_ARGUMENT, "not a valid");
    CHECK_ERR(obj_db_close((obj_db *)fake_ones), OBJ_INVALID_ARGUMENT, "not a valid");
    CHECK_ERR(obj_db_free((obj_db *)fake_zero), OBJ_INVALID_ARGUMENT, "not a valid");
    CHECK_ERR(obj_txn_free((obj_txn *)db), OBJ_INVALID_ARGUMENT, "not a valid");
    CHECK_ERR(obj_cursor_free((obj_cursor *)r), OBJ_INVALID_ARGUMENT, "not a valid");
    /* A cursor of another kind. */
    obj_bytes k = {0};
    CHECK_ERR(obj_kv_cursor_next(cur, &k, &out, &done), OBJ_INVALID_ARGUMENT, "");
    CHECK_ERR(obj_dump_cursor_next(cur, &id, NULL, &out, &done), OBJ_INVALID_ARGUMENT, "");
    /* The refused calls changed nothing: the cursor still works. */
    CHECK_OK(obj_cursor_next(cur, &id, &out, NULL, &done));
    CHECK(!done && id == 1);
    obj_bytes_free(&out);

    /* NULL out-pointers and strings. */
    CHECK_ERR(obj_cursor_next(cur, NULL, &out, NULL, &done), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_cursor_next(cur, &id, NULL, NULL, &done), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_cursor_next(cur, &id, &out, NULL, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_cursor_next_batch(cur, 0, &out), OBJ_INVALID_ARGUMENT, "");
    CHECK_ERR(obj_cursor_next_batch(cur, 5, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_cursor_next_batch_columns(cur, 0, true, &out), OBJ_INVALID_ARGUMENT, "");
    CHECK_ERR(obj_cursor_next_batch_columns(cur, 5, true, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_query(r, JSON("{\"collection\":\"users\"}"), NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_query(r, NULL, 10, &cur), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_query_count(r, JSON("{\"collection\":\"users\"}"), NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_query_explain(r, JSON("{\"collection\":\"users\"}"), NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_doc_get(r, NULL, 1, &out, NULL, &found), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_doc_get(r, "users", 1, NULL, NULL, &found), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_doc_get(r, "users", 1, &out, NULL, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_doc_get_many(r, "users", NULL, 3, &out), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_collection_count(r, "users", NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_collection_count(r, NULL, &n), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_collection_info(r, "users", NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_collection_list(r, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_index_list(r, "users", NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_find_unique(r, "users", NULL, JSON("[\"u1@x\"]"), &id, &out, NULL, &found), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_find_unique(r, "users", "by_email", NULL, 3, &id, &out, NULL, &found), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_find_unique(r, "users", "by_email", JSON("[\"u1@x\"]"), NULL, &out, NULL, &found), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_kv_get(r, "meta", NULL, 4, &out, &found), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_kv_scan(r, "meta", NULL, 0, NULL, 0, NULL, 0, false, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_kv_scan(r, "meta", NULL, 2, NULL, 0, NULL, 0, false, &cur), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_kv_scan(r, "meta", NULL, 0, NULL, 5, NULL, 0, false, &cur), OBJ_INVALID_ARGUMENT, "end is NULL");
    CHECK_ERR(obj_kv_scan(r, "meta", NULL, 0, NULL, 0, NULL, 5, false, &cur), OBJ_INVALID_ARGUMENT, "prefix is NULL");
    CHECK_ERR(obj_kv_list(r, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_collection_dump(r, "users", NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_db_stat_json(db, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_db_backup(db, NULL, NULL, NULL, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_db_attach(db, NULL, "ns"), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_db_attach(db, path, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_db_export(db, NULL, NULL, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_db_import(db, NULL, 0, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_db_import(NULL, "/no/such/file.jsonl", 0, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_db_restore(NULL, path, true), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_db_open(NULL, NULL, &db), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_bytes_copy(NULL, 3, &out), OBJ_INVALID_ARGUMENT, "NULL");
    /* A NULL out-pointer is refused before anything is allocated (valgrind
     * reports a leak otherwise). */
    CHECK_ERR(obj_bytes_copy(U8("abc"), 3, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_OK(obj_cursor_free(cur));
    CHECK_OK(obj_txn_free(r));

    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_ERR(obj_doc_insert(w, NULL, JSON("{}"), 0, &id), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_doc_insert(w, "users", NULL, 5, 0, &id), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_doc_insert(w, "users", JSON("{\"email\":\"new@x\"}"), 0, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_doc_insert_many(w, "users", JSON("[{\"a\":1},{\"a\":2}]"), 0, NULL, 0, &count), OBJ_INVALID_ARGUMENT, "");
    uint64_t ids[1];
    CHECK_ERR(obj_doc_insert_many(w, "users", JSON("[{\"a\":1},{\"a\":2}]"), 0, ids, 1, &count), OBJ_INVALID_ARGUMENT, "");
    CHECK_ERR(obj_doc_insert_many(w, "users", JSON("[{\"a\":1}]"), 0, ids, 1, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_doc_upsert(w, "users", 3, NULL, 2, 0, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_doc_replace(w, NULL, 3, JSON("{}"), 0), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_doc_delete(w, NULL, 3, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_raw_insert(w, "raw", NULL, 4, &id), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_raw_insert(w, "raw", U8("abcd"), 4, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_kv_put(w, NULL, U8("k"), 1, U8("v"), 1), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_kv_put(w, "meta", U8("k2"), 2, NULL, 1), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_kv_delete(w, "meta", NULL, 1, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_kv_drop(w, NULL, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_index_create(w, "users", NULL, 4), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_index_drop(w, "users", NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_collection_create(w, NULL, 0), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_collection_drop(w, NULL, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    /* Nothing of the refused writes happened; the transaction commits. */
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_db_free(db));
    check_intact(0);
}

static void test_invalid_utf8(void) {
    size_t count = 0;
    const char bad1[] = {'u', (char)0xff, (char)0xfe, 0};
    const char bad2[] = {(char)0xc3, (char)0x28, 0};        /* a broken 2-byte sequence */
    const char bad3[] = {(char)0xed, (char)0xa0, (char)0x80, 0}; /* an encoded surrogate */
    const char bad4[] = {(char)0xc0, (char)0xaf, 0};        /* an overlong '/' */
    const char *bad[] = {bad1, bad2, bad3, bad4};
    obj_db *db = open_db(path);
    obj_txn *w = NULL;
    obj_bytes out = {0};
    uint64_t id = 0, n = 0;
    bool found = false;
    CHECK_OK(obj_txn_begin_write(db, &w));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *b = bad[i];
        CHECK_ERR(obj_collection_create(w, b, 0), OBJ_INVALID_ARGUMENT, "UTF-8");
        CHECK_ERR(obj_doc_insert(w, b, JSON("{}"), 0, &id), OBJ_INVALID_ARGUMENT, "UTF-8");
        CHECK_ERR(obj_doc_get(w, b, 1, &out, NULL, &found), OBJ_INVALID_ARGUMENT, "UTF-8");
        CHECK_ERR(obj_collection_count(w, b, &n), OBJ_INVALID_ARGUMENT, "UTF-8");
        CHECK_ERR(obj_kv_put(w, b, U8("k"), 1, U8("v"), 1), OBJ_INVALID_ARGUMENT, "UTF-8");
        CHECK_ERR(obj_index_drop(w, "users", b), OBJ_INVALID_ARGUMENT, "UTF-8");
        CHECK_ERR(obj_find_unique(w, "users", b, JSON("[\"u1@x\"]"), &id, &out, NULL, &found), OBJ_INVALID_ARGUMENT, "UTF-8");
        CHECK_ERR(obj_db_attach(db, path, b), OBJ_INVALID_ARGUMENT, "UTF-8");
        CHECK_ERR(obj_db_open(b, NULL, &db), OBJ_INVALID_ARGUMENT, "UTF-8");
        CHECK_ERR(obj_db_backup(db, b, NULL, NULL, NULL), OBJ_INVALID_ARGUMENT, "UTF-8");
        obj_options o;
        obj_options_init(&o);
        o.passphrase = b; /* any bytes are a passphrase: this one is for a plain file */
        obj_db *never = NULL;
        CHECK_ERR(obj_db_open(path, &o, &never), OBJ_ENCRYPTION, "not encrypted");
        CHECK(never == NULL);
    }
    /* Invalid UTF-8 inside JSON text: documents, queries, index specs, values. */
    const char doc_bad[] = "{\"email\":\"\xff\xfe\"}";
    const char key_bad[] = "{\"\xc3\x28\":1}";
    const char query_bad[] = "{\"collection\":\"users\",\"filter\":{\"eq\":[\"email\",\"\xff\"]}}";
    const char spec_bad[] = "{\"name\":\"\xc3\x28\",\"fields\":[\"a\"]}";
    CHECK_ERR(obj_doc_insert(w, "users", JSON(doc_bad), 0, &id), OBJ_INVALID_ARGUMENT, "");
    CHECK_ERR(obj_doc_insert(w, "users", JSON(key_bad), 0, &id), OBJ_INVALID_ARGUMENT, "");
    CHECK_ERR(obj_doc_upsert(w, "users", 2, JSON(doc_bad), 0, NULL), OBJ_INVALID_ARGUMENT, "");
    CHECK_ERR(obj_doc_replace(w, "users", 2, JSON(doc_bad), 0), OBJ_INVALID_ARGUMENT, "");
    CHECK_ERR(obj_doc_insert_many(w, "users", JSON("[{\"a\":\"\xff\"}]"), 0, &id, 1, &count), OBJ_INVALID_ARGUMENT, "");
    obj_cursor *cur = NULL;
    CHECK_ERR(obj_query(w, JSON(query_bad), &cur), OBJ_INVALID_ARGUMENT, "UTF-8");
    CHECK_ERR(obj_query_count(w, JSON(query_bad), &n), OBJ_INVALID_ARGUMENT, "UTF-8");
    CHECK_ERR(obj_index_create(w, "users", JSON(spec_bad)), OBJ_INVALID_ARGUMENT, "UTF-8");
    CHECK_ERR(obj_find_unique(w, "users", "by_email", JSON("[\"\xff\"]"), &id, &out, NULL, &found), OBJ_INVALID_ARGUMENT, "");
    /* A JSON escape of a lone surrogate is refused too. */
    CHECK_ERR(obj_doc_insert(w, "users", JSON("{\"a\":\"\\ud800\"}"), 0, &id), OBJ_INVALID_ARGUMENT, "");
    /* Arbitrary bytes are fine as kv keys and values and raw documents. */
    CHECK_OK(obj_kv_put(w, "meta", U8("\xff\xfe"), 2, U8("\xc3\x28"), 2));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_db_free(db));
    check_intact(1);
    /* Remove the binary key again so later checks count one key. */
    db = open_db(path);
    CHECK_OK(obj_txn_begin_write(db, &w));
    bool existed = false;
    CHECK_OK(obj_kv_delete(w, "meta", U8("\xff\xfe"), 2, &existed));
    CHECK(existed);
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_db_free(db));
}

static void test_oversized(void) {
    obj_db *db = open_db(path);
    obj_txn *w = NULL;
    uint64_t id = 0;
    obj_bytes out = {0};
    bool found = false;
    CHECK_OK(obj_txn_begin_write(db, &w));
    static uint8_t key[1 << 20];
    memset(key, 'k', sizeof key);
    /* The longest key is accepted, one byte more is refused, and much more. */
    CHECK_OK(obj_kv_put(w, "big", key, MAX_KEY, U8("edge"), 4));
    CHECK_ERR(obj_kv_put(w, "big", key, MAX_KEY + 1, U8("v"), 1), OBJ_INVALID_ARGUMENT, "the longest key");
    CHECK_ERR(obj_kv_put(w, "big", key, sizeof key, U8("v"), 1), OBJ_INVALID_ARGUMENT, "the longest key");
    /* Reading or deleting an over-long key finds nothing or is refused; never a crash. */
    obj_status st = obj_kv_get(w, "big", key, sizeof key, &out, &found);
    CHECK(st == OBJ_INVALID_ARGUMENT || (st == OBJ_OK && !found));
    st = obj_kv_delete(w, "big", key, sizeof key, NULL);
    CHECK(st == OBJ_INVALID_ARGUMENT || st == OBJ_OK);
    /* Names over 200 bytes. */
    char long_name[300];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    CHECK_ERR(obj_collection_create(w, long_name, 0), OBJ_INVALID_ARGUMENT, "200 bytes");
    CHECK_ERR(obj_kv_put(w, long_name, U8("k"), 1, U8("v"), 1), OBJ_INVALID_ARGUMENT, "200 bytes");
    CHECK_ERR(obj_collection_create(w, "a/b", 0), OBJ_INVALID_ARGUMENT, "'/'");
    CHECK_ERR(obj_collection_create(w, "", 0), OBJ_INVALID_ARGUMENT, "");
    /* A value too long for the unique index: the document is refused with
     * no trace, in insert, upsert and replace alike. */
    size_t big = 200000;
    char *doc = long_string_doc("email", big, 'e');
    CHECK_ERR(obj_doc_insert(w, "users", U8(doc), strlen(doc), 0, &id), OBJ_INVALID_ARGUMENT, "too long for index");
    CHECK_ERR(obj_doc_upsert(w, "users", 5, U8(doc), strlen(doc), 0, NULL), OBJ_INVALID_ARGUMENT, "too long for index");
    CHECK_ERR(obj_doc_replace(w, "users", 5, U8(doc), strlen(doc), 0), OBJ_INVALID_ARGUMENT, "too long for index");
    /* The same size in a field no index covers is a fine (overflow) document. */
    memcpy(doc + 2, "notes", 5);
    CHECK_OK(obj_doc_insert(w, "big_docs", U8(doc), strlen(doc), 0, &id));
    CHECK_OK(obj_doc_get(w, "big_docs", id, &out, NULL, &found));
    CHECK(found && out.len == strlen(doc));
    obj_bytes_free(&out);
    free(doc);
    /* A huge document (16 MiB of raw bytes) and a huge kv value work. */
    size_t huge = 16u << 20;
    uint8_t *blob = calloc(huge, 1);
    CHECK(blob != NULL);
    CHECK_OK(obj_raw_insert(w, "blobs", blob, huge, &id));
    CHECK_OK(obj_kv_put(w, "big", U8("huge"), 4, blob, huge));
    free(blob);
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    /* Drop the extras so the sample is as it was. */
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_kv_drop(w, "big", NULL));
    CHECK_OK(obj_collection_drop(w, "big_docs", NULL));
    CHECK_OK(obj_collection_drop(w, "blobs", NULL));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    check_intact_db(db, 0);
    CHECK_OK(obj_db_free(db));
}

static void test_malformed_and_nested_json(void) {
    size_t count = 0;
    obj_db *db = open_db(path);
    obj_txn *w = NULL;
    uint64_t id = 0, n = 0;
    obj_bytes out = {0};
    bool found = false;
    obj_cursor *cur = NULL;
    CHECK_OK(obj_txn_begin_write(db, &w));
    /* Malformed documents. */
    const char *bad_docs[] = {"", "{", "}", "{\"a\":1,}", "{\"a\":1}x", "{\"a\":1,\"a\":2}", "[1,2]", "42",
                              "null", "\"doc\"", "{\"a\":1e999}", "{\"a\":tru}", "{'a':1}", "{\"a\":NaN}",
                              "{\"$bytes\":\"!!!\"}", "{\"x\":{\"$ts\":\"soon\"}}"};
    for (size_t i = 0; i < sizeof bad_docs / sizeof *bad_docs; i++) {
        CHECK_ERR(obj_doc_insert(w, "users", JSON(bad_docs[i]), 0, &id), OBJ_INVALID_ARGUMENT, "");
        CHECK(strlen(obj_last_error()) > 0);
    }
    uint64_t two_ids[2];
    CHECK_ERR(obj_doc_insert_many(w, "users", JSON("{\"a\":1}"), 0, &id, 1, &count), OBJ_INVALID_ARGUMENT, "");
    CHECK_ERR(obj_doc_insert_many(w, "users", JSON("[{\"a\":1},7]"), 0, two_ids, 2, &count), OBJ_INVALID_ARGUMENT, "");
    /* A NUL inside the given length is part of the text (and invalid there). */
    CHECK_ERR(obj_doc_insert(w, "users", U8("{\"a\":1}\0"), 8, 0, &id), OBJ_INVALID_ARGUMENT, "");

    /* Malformed queries and index specs; each message names the problem. */
    struct { const char *q, *needle; } bad_queries[] = {
        {"", "EOF"},
        {"[]", ""},
        {"{}", "collection"},
        {"{\"collection\":1}", "collection"},
        {"{\"collection\":\"users\",\"bogus\":1}", "bogus"},
        {"{\"collection\":\"users\",\"collection\":\"x\"}", "duplicate"},
        {"{\"collection\":\"users\",\"filter\":{\"gtt\":[\"n\",1]}}", "unknown operator"},
        {"{\"collection\":\"users\",\"filter\":{\"eq\":[\"n\"]}}", "filter.eq"},
        {"{\"collection\":\"users\",\"limit\":-1}", "limit"},
        {"{\"collection\":\"users\",\"sort\":[{\"field\":\"n\",\"order\":\"up\"}]}", "order"},
        {"{\"collection\":\"users\",\"count_only\":true}", "count_only"},
    };
    for (size_t i = 0; i < sizeof bad_queries / sizeof *bad_queries; i++) {
        CHECK_ERR(obj_query(w, JSON(bad_queries[i].q), &cur), OBJ_INVALID_ARGUMENT, bad_queries[i].needle);
        if (i + 1 < sizeof bad_queries / sizeof *bad_queries) {
            CHECK_ERR(obj_query_count(w, JSON(bad_queries[i].q), &n), OBJ_INVALID_ARGUMENT, bad_queries[i].needle);
            CHECK_ERR(obj_query_explain(w, JSON(bad_queries[i].q), &out), OBJ_INVALID_ARGUMENT, bad_queries[i].needle);
        }
    }
    CHECK_ERR(obj_query(w, JSON("{\"collection\":\"users\",\"index\":{\"name\":\"nope\"}}"), &cur), OBJ_NOT_FOUND, "nope");
    const char *bad_specs[] = {"", "{}", "{\"name\":\"i\"}", "{\"name\":\"i\",\"fields\":[]}",
                               "{\"name\":\"i\",\"kind\":\"sideways\",\"fields\":[\"a\"]}", "{\"name\":\"\",\"fields\":[\"a\"]}"};
    for (size_t i = 0; i < sizeof bad_specs / sizeof *bad_specs; i++) {
        CHECK_ERR(obj_index_create(w, "users", JSON(bad_specs[i])), OBJ_INVALID_ARGUMENT, "");
    }
    /* A key given twice is refused, as in documents and queries (review 16:
     * the last "name" won). */
    CHECK_ERR(obj_index_create(w, "users", JSON("{\"name\":\"j\",\"name\":\"k\",\"fields\":[\"a\"]}")),
              OBJ_INVALID_ARGUMENT, "duplicate key \"name\"");
    CHECK_ERR(obj_index_create(w, "users", JSON("{\"name\":\"j\",\"kind\":7,\"fields\":[\"a\"]}")),
              OBJ_INVALID_ARGUMENT, "got 7");
    CHECK_ERR(obj_find_unique(w, "users", "by_email", JSON("\"u1@x\""), &id, &out, NULL, &found), OBJ_INVALID_ARGUMENT, "");
    CHECK_ERR(obj_find_unique(w, "users", "by_email", JSON("[\"a\",\"b\"]"), &id, &out, NULL, &found), OBJ_INVALID_ARGUMENT, "");
    CHECK_ERR(obj_find_unique(w, "users", "nope", JSON("[\"a\"]"), &id, &out, NULL, &found), OBJ_NOT_FOUND, "nope");

    /* Deep nesting: 100,000 levels of arrays or objects, closed or not, in
     * every JSON argument. The limit is 128 levels; the error says so. */
    const size_t D = 100000;
    char *arrays_open = repeat("[", D, "", "", 0);
    char *arrays = repeat("[", D, "", "]", D);
    char *objects = repeat("{\"a\":", D, "1", "}", D);
    char *doc_arrays = repeat("{\"a\":", 1, arrays, "}", 1);
    const char *docs[] = {arrays_open, arrays, objects, doc_arrays};
    for (size_t i = 0; i < 4; i++) {
        CHECK_ERR(obj_doc_insert(w, "users", JSON(docs[i]), 0, &id), OBJ_INVALID_ARGUMENT, "deeper than 128 levels");
        CHECK_ERR(obj_doc_upsert(w, "users", 4, JSON(docs[i]), 0, NULL), OBJ_INVALID_ARGUMENT, "deeper than 128 levels");
        CHECK_ERR(obj_doc_insert_many(w, "users", JSON(docs[i]), 0, &id, 1, &count), OBJ_INVALID_ARGUMENT, "deeper than 128 levels");
        CHECK_ERR(obj_index_create(w, "users", JSON(docs[i])), OBJ_INVALID_ARGUMENT, "deeper than 128 levels");
        CHECK_ERR(obj_find_unique(w, "users", "by_email", JSON(docs[i]), &id, &out, NULL, &found), OBJ_INVALID_ARGUMENT, "deeper than 128 levels");
    }
    char *nested_filter = repeat("{\"not\":", D, "true", "}", D);
    char *q = malloc(strlen(nested_filter) + 64);
    CHECK(q != NULL);
    sprintf(q, "{\"collection\":\"users\",\"filter\":%s}", nested_filter);
    CHECK_ERR(obj_query(w, JSON(q), &cur), OBJ_INVALID_ARGUMENT, "deeper than 128 levels");
    CHECK_ERR(obj_query_count(w, JSON(q), &n), OBJ_INVALID_ARGUMENT, "deeper than 128 levels");
    free(q);
    free(nested_filter);
    for (size_t i = 0; i < 4; i++) free((void *)docs[i]);
    /* Exactly 128 levels (the document object plus 127 arrays) is stored. */
    char *inner = repeat("[", 127, "", "]", 127);
    char *edge = malloc(strlen(inner) + 16);
    sprintf(edge, "{\"a\":%s}", inner);
    CHECK_OK(obj_doc_insert(w, "edge", JSON(edge), 0, &id));
    CHECK_OK(obj_doc_get(w, "edge", id, &out, NULL, &found));
    CHECK(found && out.len == strlen(edge));
    obj_bytes_free(&out);
    free(inner);
    free(edge);
    CHECK_OK(obj_collection_drop(w, "edge", NULL));
    /* After all that, the transaction still works and commits. */
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_db_free(db));
    check_intact(0);
}

static void test_not_a_database_and_truncated(void) {
    size_t len = 0;
    uint8_t *good = read_file(path, &len);
    CHECK(len >= 3 * 4096);
    char other[600];
    path_in_dir(other, sizeof other, "hostile-other.obj");
    obj_db *db = NULL;
    /* Not a database: text, zeros, an SQLite header, a few bytes. */
    static uint8_t junk[12000];
    memset(junk, 'x', sizeof junk);
    write_file(other, junk, sizeof junk);
    CHECK_ERR(obj_db_open(other, NULL, &db), OBJ_INVALID_ARGUMENT, "not an obj database");
    memset(junk, 0, sizeof junk);
    write_file(other, junk, sizeof junk);
    obj_status st = obj_db_open(other, NULL, &db);
    CHECK(st == OBJ_INVALID_ARGUMENT || st == OBJ_CORRUPTION);
    CHECK(strlen(obj_last_error()) > 0);
    memcpy(junk, "SQLite format 3", 16);
    write_file(other, junk, sizeof junk);
    CHECK_ERR(obj_db_open(other, NULL, &db), OBJ_INVALID_ARGUMENT, "not an obj database");
    write_file(other, "obj", 3);
    st = obj_db_open(other, NULL, &db);
    CHECK(st == OBJ_INVALID_ARGUMENT || st == OBJ_CORRUPTION);
    /* Random bytes (a fixed xorshift sequence). */
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int round = 0; round < 20; round++) {
        size_t n = 0;
        for (size_t i = 0; i < sizeof junk; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            junk[i] = (uint8_t)x;
        }
        n = 1 + (size_t)(x % sizeof junk);
        write_file(other, junk, n);
        st = obj_db_open(other, NULL, &db);
        CHECK(st == OBJ_INVALID_ARGUMENT || st == OBJ_CORRUPTION || st == OBJ_UNSUPPORTED);
        size_t after = 0;
        uint8_t *back = read_file(other, &after);
        CHECK(after == n && memcmp(back, junk, n) == 0); /* a refused open writes nothing */
        free(back);
    }
    /* A real database truncated to various lengths: refused, unchanged. */
    size_t cuts[] = {1, 16, 100, 4095, 4096, 4097, 8192, len / 2, len - 4096, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_file(other, good, cuts[i]);
        st = obj_db_open(other, NULL, &db);
        if (st != OBJ_CORRUPTION && st != OBJ_INVALID_ARGUMENT) {
            fprintf(stderr, "truncated to %zu of %zu: %s (%s)\n", cuts[i], len, obj_status_name(st), obj_last_error());
            exit(1);
        }
        CHECK(strstr(obj_last_error(), "truncated") != NULL || strstr(obj_last_error(), "not an obj database") != NULL ||
              strstr(obj_last_error(), "corrupt") != NULL);
        size_t after = 0;
        uint8_t *back = read_file(other, &after);
        CHECK(after == cuts[i] && memcmp(back, good, after) == 0);
        free(back);
    }
    /* obj_db_restore refuses a truncated backup before touching the target. */
    CHECK_ERR(obj_db_restore(other, path, true), OBJ_CORRUPTION, "");
    /* attach refuses it too. */
    db = open_db(path);
    st = obj_db_attach(db, other, "trunc");
    CHECK(st == OBJ_CORRUPTION || st == OBJ_INVALID_ARGUMENT);
    check_intact_db(db, 0);
    CHECK_OK(obj_db_free(db));
    /* A refused open leaves no -wal or -shm beside the file. */
    char side[620];
    snprintf(side, sizeof side, "%s-wal", other);
    CHECK(access(side, F_OK) != 0);
    snprintf(side, sizeof side, "%s-shm", other);
    CHECK(access(side, F_OK) != 0);
    unlink(other);
    free(good);
    check_intact(0);
}

static void test_foreign_wal(void) {
    /* Another database, open with its WAL holding a commit. */
    char other[600], other_wal[610];
    path_in_dir(other, sizeof other, "hostile-foreign.obj");
    snprintf(other_wal, sizeof other_wal, "%s-wal", other);
    unlink(other);
    unlink(other_wal);
    obj_options o;
    CHECK_OK(obj_options_init(&o));
    o.wal_autocheckpoint = 0;
    obj_db *a = NULL;
    CHECK_OK(obj_db_open(other, &o, &a));
    obj_txn *w = NULL;
    uint64_t id = 0;
    CHECK_OK(obj_txn_begin_write(a, &w));
    CHECK_OK(obj_doc_insert(w, "users", JSON("{\"email\":\"intruder@x\"}"), 0, &id));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    size_t wal_len = 0;
    uint8_t *foreign = read_file(other_wal, &wal_len);
    CHECK(wal_len > 0);
    CHECK_OK(obj_db_free(a));

    size_t main_len = 0;
    uint8_t *main_before = read_file(path, &main_len);
    write_file(wal, foreign, wal_len);
    obj_db *db = NULL;
    CHECK_ERR(obj_db_open(path, NULL, &db), OBJ_CORRUPTION, "another database");
    /* Neither file was changed: the user decides what to do with the WAL. */
    size_t n = 0;
    uint8_t *back = read_file(path, &n);
    CHECK(n == main_len && memcmp(back, main_before, n) == 0);
    free(back);
    back = read_file(wal, &n);
    CHECK(n == wal_len && memcmp(back, foreign, n) == 0);
    free(back);
    /* A WAL of garbage (no valid header or frame) is ignored or refused. */
    static uint8_t garbage[9000];
    memset(garbage, 0xa5, sizeof garbage);
    write_file(wal, garbage, sizeof garbage);
    obj_status st = obj_db_open(path, NULL, &db);
    CHECK(st == OBJ_OK || st == OBJ_CORRUPTION);
    if (st == OBJ_OK) {
        check_intact_db(db, 0);
        CHECK_OK(obj_db_free(db));
    }
    unlink(wal);
    free(foreign);
    free(main_before);
    unlink(other);
    unlink(other_wal);
    check_intact(0);
}

static void test_closed_and_finished(void) {
    obj_db *db = open_db(path);
    obj_txn *w = NULL, *r = NULL, *r2 = NULL;
    obj_cursor *qc = NULL, *kc = NULL, *dc = NULL;
    obj_bytes out = {0}, k = {0};
    uint64_t id = 0, n = 0;
    bool found = false, done = false;

    /* Finished transactions: every later call is refused and says why. */
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_query(w, JSON("{\"collection\":\"users\"}"), &qc));
    CHECK_OK(obj_kv_put(w, "meta", U8("tmp"), 3, U8("x"), 1));
    /* A write after the cursor was opened ends the cursor. */
    CHECK_ERR(obj_cursor_next(qc, &id, &out, NULL, &done), OBJ_INVALID_ARGUMENT, "changed under the cursor");
    CHECK_OK(obj_cursor_free(qc));
    CHECK_OK(obj_query(w, JSON("{\"collection\":\"users\"}"), &qc));
    CHECK_OK(obj_kv_scan(w, "meta", NULL, 0, NULL, 0, NULL, 0, false, &kc));
    CHECK_OK(obj_collection_dump(w, "users", &dc));
    CHECK_OK(obj_txn_rollback(w));
    CHECK_ERR(obj_txn_commit(w), OBJ_INVALID_ARGUMENT, "already rolled back");
    CHECK_ERR(obj_txn_rollback(w), OBJ_INVALID_ARGUMENT, "already rolled back");
    CHECK_ERR(obj_doc_insert(w, "users", JSON("{\"email\":\"late@x\"}"), 0, &id), OBJ_INVALID_ARGUMENT, "already rolled back");
    CHECK_ERR(obj_doc_get(w, "users", 1, &out, NULL, &found), OBJ_INVALID_ARGUMENT, "already rolled back");
    CHECK_ERR(obj_doc_delete(w, "users", 1, NULL), OBJ_INVALID_ARGUMENT, "already rolled back");
    CHECK_ERR(obj_kv_put(w, "meta", U8("k"), 1, U8("w"), 1), OBJ_INVALID_ARGUMENT, "already rolled back");
    CHECK_ERR(obj_index_drop(w, "users", "by_email"), OBJ_INVALID_ARGUMENT, "already rolled back");
    CHECK_ERR(obj_collection_drop(w, "users", NULL), OBJ_INVALID_ARGUMENT, "already rolled back");
    CHECK_ERR(obj_query(w, JSON("{\"collection\":\"users\"}"), &qc), OBJ_INVALID_ARGUMENT, "already rolled back");
    CHECK_ERR(obj_collection_count(w, "users", &n), OBJ_INVALID_ARGUMENT, "already rolled back");
    CHECK_ERR(obj_collection_list(w, &out), OBJ_INVALID_ARGUMENT, "already rolled back");
    /* Its cursors, of each kind, are refused too (and may still be freed). */
    CHECK_ERR(obj_cursor_next(qc, &id, &out, NULL, &done), OBJ_INVALID_ARGUMENT, "");
    CHECK_ERR(obj_cursor_next_batch(qc, 4, &out), OBJ_INVALID_ARGUMENT, "");
    CHECK_ERR(obj_cursor_next_batch_columns(qc, 4, false, &out), OBJ_INVALID_ARGUMENT, "");
    CHECK_ERR(obj_kv_cursor_next(kc, &k, &out, &done), OBJ_INVALID_ARGUMENT, "");
    CHECK_ERR(obj_dump_cursor_next(dc, &id, NULL, &out, &done), OBJ_INVALID_ARGUMENT, "");
    CHECK_OK(obj_cursor_free(qc));
    CHECK_OK(obj_cursor_free(kc));
    CHECK_OK(obj_cursor_free(dc));
    CHECK_OK(obj_txn_free(w));

    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_kv_put(w, "meta", U8("k"), 1, U8("v"), 1));
    CHECK_OK(obj_txn_commit(w));
    CHECK_ERR(obj_txn_commit(w), OBJ_INVALID_ARGUMENT, "already committed");
    CHECK_ERR(obj_doc_insert(w, "users", JSON("{\"email\":\"late@x\"}"), 0, &id), OBJ_INVALID_ARGUMENT, "already committed");
    CHECK_ERR(obj_kv_delete(w, "meta", U8("k"), 1, NULL), OBJ_INVALID_ARGUMENT, "already committed");
    CHECK_OK(obj_txn_free(w));
    /* A read transaction ended with commit is finished as well. */
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_query(r, JSON("{\"collection\":\"users\"}"), &qc));
    CHECK_OK(obj_txn_commit(r));
    CHECK_ERR(obj_doc_get(r, "users", 1, &out, NULL, &found), OBJ_INVALID_ARGUMENT, "already");
    CHECK_ERR(obj_cursor_next(qc, &id, &out, NULL, &done), OBJ_INVALID_ARGUMENT, "");
    CHECK_OK(obj_txn_free(r));
    /* A cursor outliving its freed transaction is refused, then freed. */
    CHECK_ERR(obj_cursor_next(qc, &id, &out, NULL, &done), OBJ_INVALID_ARGUMENT, "");
    CHECK_OK(obj_cursor_free(qc));
    /* A write in a read transaction. */
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_ERR(obj_doc_insert(r, "users", JSON("{\"email\":\"ro@x\"}"), 0, &id), OBJ_INVALID_ARGUMENT, "read transaction");
    CHECK_ERR(obj_collection_create(r, "x", 0), OBJ_INVALID_ARGUMENT, "read transaction");

    /* A closed database: every call on it is OBJ_CLOSED; transactions begun
     * before the close keep working until freed. */
    CHECK_OK(obj_txn_begin_read(db, &r2));
    CHECK_OK(obj_db_close(db));
    CHECK_OK(obj_db_close(db)); /* twice is fine */
    CHECK_ERR(obj_txn_begin_read(db, &w), OBJ_CLOSED, "closed");
    CHECK_ERR(obj_txn_begin_write(db, &w), OBJ_CLOSED, "closed");
    CHECK_ERR(obj_db_checkpoint(db, NULL), OBJ_CLOSED, "closed");
    CHECK_ERR(obj_db_stat_json(db, &out), OBJ_CLOSED, "closed");
    CHECK_ERR(obj_db_integrity_check(db, NULL), OBJ_CLOSED, "closed");
    CHECK_ERR(obj_db_compact(db, NULL), OBJ_CLOSED, "closed");
    char target[600];
    path_in_dir(target, sizeof target, "hostile-backup.obj");
    CHECK_ERR(obj_db_backup(db, target, NULL, NULL, NULL), OBJ_CLOSED, "closed");
    CHECK(access(target, F_OK) != 0);
    /* An existing file at the export path is not truncated by a refused export. */
    write_file(target, "keep", 4);
    CHECK_ERR(obj_db_export(db, NULL, target, NULL), OBJ_CLOSED, "closed");
    CHECK_ERR(obj_db_export(NULL, NULL, target, NULL), OBJ_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(obj_db_export((obj_db *)r, NULL, target, NULL), OBJ_INVALID_ARGUMENT, "not a valid database handle");
    size_t kept = 0;
    uint8_t *keep = read_file(target, &kept);
    CHECK(kept == 4 && memcmp(keep, "keep", 4) == 0);
    free(keep);
    unlink(target);
    CHECK_ERR(obj_db_attach(db, path, "again"), OBJ_CLOSED, "closed");
    CHECK_OK(obj_collection_count(r2, "users", &n));
    CHECK(n == 30);
    CHECK_OK(obj_doc_get(r, "users", 1, &out, NULL, &found));
    CHECK(found);
    obj_bytes_free(&out);
    CHECK_OK(obj_txn_free(r2));
    CHECK_OK(obj_txn_free(r));
    CHECK_OK(obj_db_free(db));
    check_intact(0);
}

/* obj_options.struct_size that ends inside a field: the library reads only
 * the fields that fit whole in it (obj.h), so a size that cuts a pointer in
 * two must leave that pointer at its default, not make one of half the
 * caller's bytes and the default's other half (which it once read). A C
 * bool byte other than 0 or 1 is true. */
static void test_options_struct_size(void) {
    obj_db *db = NULL;
    obj_options o;
    uint64_t n = 0;
    obj_txn *r = NULL;
    CHECK_OK(obj_options_init(&o));
    /* The low half of this pointer is 1: read as a key, it is a crash. */
    o.encryption_key = (const uint8_t *)(uintptr_t)0xdead00000001ull;
    o.struct_size = offsetof(obj_options, encryption_key) + 4;
    CHECK_OK(obj_db_open(path, &o, &db));
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_collection_count(r, "users", &n));
    CHECK(n == 30);
    CHECK_OK(obj_txn_free(r));
    CHECK_OK(obj_db_free(db));
    CHECK_OK(obj_options_init(&o));
    o.passphrase = (const char *)(uintptr_t)0xdead00000001ull;
    o.struct_size = offsetof(obj_options, passphrase) + 4;
    CHECK_OK(obj_db_open(path, &o, &db));
    CHECK_OK(obj_db_free(db));
    /* Sizes that end inside an integer field: that field keeps its default. */
    CHECK_OK(obj_options_init(&o));
    o.sync_mode = 0x00070000; /* low half 0, high half 7: invalid whole */
    o.struct_size = offsetof(obj_options, sync_mode) + 2;
    CHECK_OK(obj_db_open(path, &o, &db));
    CHECK_OK(obj_db_free(db));
    o.struct_size = sizeof o;
    CHECK_ERR(obj_db_open(path, &o, &db), OBJ_INVALID_ARGUMENT, "sync_mode");
    o.struct_size = offsetof(obj_options, page_size) + 3;
    CHECK_ERR(obj_db_open(path, &o, &db), OBJ_INVALID_ARGUMENT, "struct_size");
    /* A bool byte of 2 (memset, or a compiler's other idea) reads as true. */
    CHECK_OK(obj_options_init(&o));
    memset(&o.read_only, 2, 1);
    CHECK_OK(obj_db_open(path, &o, &db));
    CHECK_ERR(obj_db_doc_insert(db, "users", JSON("{}"), 0, &n), OBJ_INVALID_ARGUMENT, "read-only");
    CHECK_OK(obj_db_free(db));
    check_intact(0);
}

/* Review 10: a WAL of an earlier state of this same database (saved aside
 * and put back after the database moved on) was replayed over the newer
 * main file, silently undoing every commit since; and a bit flip in the
 * magic was "not an obj database". Both are OBJ_CORRUPTION with a message,
 * and neither file is changed. */
static void test_stale_wal_and_damaged_magic(void) {
    obj_options o;
    CHECK_OK(obj_options_init(&o));
    o.wal_autocheckpoint = 0;
    obj_db *db = NULL;
    obj_txn *w = NULL;
    CHECK_OK(obj_db_open(path, &o, &db));
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_kv_put(w, "stale", U8("a"), 1, U8("1"), 1));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_db_close_no_checkpoint(db));
    CHECK_OK(obj_db_free(db));
    size_t stale_len = 0;
    uint8_t *stale = read_file(wal, &stale_len);
    CHECK(stale_len > 64);
    /* Recovered, then moved on: the key goes again, and a clean close
     * folds everything into the main file and removes the WAL. */
    db = open_db(path);
    CHECK_OK(obj_txn_begin_write(db, &w));
    bool existed = false;
    CHECK_OK(obj_kv_delete(w, "stale", U8("a"), 1, &existed));
    CHECK(existed);
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_db_free(db));
    CHECK(access(wal, F_OK) != 0);
    size_t main_len = 0;
    uint8_t *main_before = read_file(path, &main_len);

    write_file(wal, stale, stale_len);
    db = NULL;
    CHECK_ERR(obj_db_open(path, NULL, &db), OBJ_CORRUPTION, "stale WAL");
    CHECK(db == NULL);
    size_t n = 0;
    uint8_t *back = read_file(path, &n);
    CHECK(n == main_len && memcmp(back, main_before, n) == 0);
    free(back);
    CHECK(unlink(wal) == 0);
    check_intact(0);

    /* One flipped bit in the magic. */
    uint8_t *flipped = read_file(path, &n);
    flipped[2] ^= 0x01;
    write_file(path, flipped, n);
    CHECK_ERR(obj_db_open(path, NULL, &db), OBJ_CORRUPTION, "magic");
    write_file(path, main_before, main_len);
    check_intact(0);
    free(flipped);
    free(stale);
    free(main_before);
}

int main(int argc, char **argv) {
    snprintf(dir, sizeof dir, "%s", argc > 1 ? argv[1] : "/tmp");
    char name[64];
    snprintf(name, sizeof name, "c-hostile-%d.obj", (int)getpid());
    path_in_dir(path, sizeof path, name);
    snprintf(wal, sizeof wal, "%s-wal", path);
    unlink(path);
    unlink(wal);
    make_sample();
    check_intact(0);
    test_null_and_wrong_kind_handles();
    test_invalid_utf8();
    test_oversized();
    test_malformed_and_nested_json();
    test_not_a_database_and_truncated();
    test_foreign_wal();
    test_stale_wal_and_damaged_magic();
    test_closed_and_finished();
    test_options_struct_size();
    unlink(path);
    unlink(wal);
    char shm[530];
    snprintf(shm, sizeof shm, "%s-shm", path);
    unlink(shm);
    printf("c hostile: %d checks passed, 0 failed\n", checks_run);
    return 0;
}
