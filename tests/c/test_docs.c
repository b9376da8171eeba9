#define _GNU_SOURCE
/* The document surface of the C ABI: collections, JSON and raw documents,
 * batch calls, secondary indexes, unique lookup, query/scan/dump cursors,
 * key-value scans; every function and its error paths. */
#include <string.h>
#include <unistd.h>
#include "check.h"

static char path[512];
static char wal[520];

/* A string literal as (pointer, length). */
#define J(s) (const uint8_t *)(s), strlen(s)

static const char BAD_UTF8[] = {'c', (char)0xff, (char)0xfe, 0};

/* True when the buffer holds exactly the text s. */
static int eq(obj_bytes b, const char *s) {
    size_t n = strlen(s);
    return b.len == n && (n == 0 || memcmp(b.data, s, n) == 0);
}

/* True when the buffer contains the text s. */
static int has(obj_bytes b, const char *s) {
    return b.len > 0 && memmem(b.data, b.len, s, strlen(s)) != NULL;
}

static void check_eq_free(obj_bytes *b, const char *want) {
    if (!eq(*b, want)) {
        fprintf(stderr, "got  %.*s\nwant %s\n", (int)b->len, (const char *)b->data, want);
    }
    CHECK(eq(*b, want));
    obj_bytes_free(b);
}

static obj_db *open_db(void) {
    obj_db *db = NULL;
    obj_options o;
    CHECK_OK(obj_options_init(&o));
    o.busy_timeout_ms = 50;
    o.sync_mode = 1;
    CHECK_OK(obj_db_open(path, &o, &db));
    return db;
}

static void test_collections(obj_db *db) {
    obj_txn *w = NULL, *r = NULL;
    obj_bytes out = {0};
    bool existed = true;
    uint64_t n = 99;

    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_collection_create(w, "users", 0));
    CHECK_OK(obj_collection_create(w, "users", 0)); /* same kind again */
    CHECK_OK(obj_collection_create(w, "blobs", OBJ_COLLECTION_RAW));
    CHECK_STATUS(obj_collection_create(w, "users", OBJ_COLLECTION_RAW), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_collection_create(w, "blobs", 0), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_collection_create(w, "x", 2), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "flags") != NULL);
    CHECK_STATUS(obj_collection_create(w, "", 0), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_collection_create(w, "a/b", 0), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_collection_create(w, NULL, 0), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_collection_create(w, BAD_UTF8, 0), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "UTF-8") != NULL);
    CHECK_STATUS(obj_collection_create(NULL, "x", 0), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_collection_create((obj_txn *)db, "x", 0), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "handle") != NULL);
    CHECK_OK(obj_collection_create(w, "doomed", 0));

    CHECK_OK(obj_collection_list(w, &out));
    check_eq_free(&out, "[\"blobs\",\"doomed\",\"users\"]");
    CHECK_STATUS(obj_collection_list(w, NULL), OBJ_INVALID_ARGUMENT);

    CHECK_OK(obj_collection_drop(w, "doomed", &existed));
    CHECK(existed);
    CHECK_OK(obj_collection_drop(w, "doomed", &existed));
    CHECK(!existed);
    CHECK_OK(obj_collection_drop(w, "never", NULL));
    CHECK_STATUS(obj_collection_drop(w, NULL, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_collection_drop(w, BAD_UTF8, NULL), OBJ_INVALID_ARGUMENT);

    CHECK_OK(obj_collection_info(w, "blobs", &out));
    check_eq_free(&out, "{\"count\":0,\"indexes\":[],\"kind\":\"raw\",\"name\":\"blobs\",\"next_id\":1}");
    CHECK_STATUS(obj_collection_info(w, "doomed", &out), OBJ_NOT_FOUND);
    CHECK(out.data == NULL);
    CHECK_STATUS(obj_collection_info(w, "users", NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_collection_info(w, BAD_UTF8, &out), OBJ_INVALID_ARGUMENT);

    CHECK_OK(obj_collection_count(w, "users", &n));
    CHECK(n == 0);
    n = 99;
    CHECK_OK(obj_collection_count(w, "missing", &n));
    CHECK(n == 0);
    CHECK_STATUS(obj_collection_count(w, "users", NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_collection_count(w, NULL, &n), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_commit(w));

    /* Finished transaction; write in a read transaction. */
    CHECK_STATUS(obj_collection_create(w, "late", 0), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "committed") != NULL);
    CHECK_STATUS(obj_collection_list(w, &out), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_collection_count(w, "users", &n), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_STATUS(obj_collection_create(r, "late", 0), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "read transaction") != NULL);
    CHECK_STATUS(obj_collection_drop(r, "users", NULL), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_collection_list(r, &out));
    check_eq_free(&out, "[\"blobs\",\"users\"]");
    CHECK_OK(obj_txn_free(r));
}

static void test_documents(obj_db *db) {
    obj_txn *w = NULL, *r = NULL;
    obj_bytes out = {0};
    uint64_t id = 0, id2 = 0;
    uint32_t version = 0;
    bool found = false, created = false, existed = false;

    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_doc_insert(w, "people", J("{\"name\":\"ann\",\"age\":30}"), 3, &id));
    CHECK(id == 1);
    CHECK_OK(obj_doc_insert(w, "people",
                            J("{\"name\":\"bob\",\"b\":{\"$bytes\":\"AAEC\"},\"t\":{\"$ts\":5},"
                              "\"$$k\":1.5,\"n\":{\"$f64\":\"nan\"}}"),
                            0, &id2));
    CHECK(id2 == 2);
    /* Reads its own writes, in the JSON form. */
    CHECK_OK(obj_doc_get(w, "people", id, &out, &version, &found));
    CHECK(found && version == 3);
    check_eq_free(&out, "{\"name\":\"ann\",\"age\":30}");
    CHECK_OK(obj_doc_get(w, "people", id2, &out, NULL, &found));
    check_eq_free(&out,
                  "{\"name\":\"bob\",\"b\":{\"$bytes\":\"AAEC\"},\"t\":{\"$ts\":5},\"$$k\":1.5,"
                  "\"n\":{\"$f64\":\"nan\"}}");
    version = 77;
    CHECK_OK(obj_doc_get(w, "people", 999, &out, &version, &found));
    CHECK(!found && out.data == NULL && out.len == 0 && version == 77);
    CHECK_OK(obj_doc_get(w, "nobody", 1, &out, NULL, &found));
    CHECK(!found);

    /* Malformed documents. */
    CHECK_STATUS(obj_doc_insert(w, "people", J("{\"a\":"), 0, &id), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "JSON") != NULL);
    CHECK_STATUS(obj_doc_insert(w, "people", J("[1,2]"), 0, &id), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "object") != NULL);
    CHECK_STATUS(obj_doc_insert(w, "people", J("{\"$bogus\":1}"), 0, &id), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_insert(w, "people", J("{\"a\":1,\"a\":2}"), 0, &id), OBJ_INVALID_ARGUMENT);
    const char bad_json_utf8[] = {'{', '"', 'a', '"', ':', '"', (char)0xff, '"', '}', 0};
    CHECK_STATUS(obj_doc_insert(w, "people", J(bad_json_utf8), 0, &id), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_insert(w, "people", NULL, 5, 0, &id), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_insert(w, "people", J("{}"), 0, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_insert(w, NULL, J("{}"), 0, &id), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_insert(w, BAD_UTF8, J("{}"), 0, &id), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_insert((obj_txn *)db, "people", J("{}"), 0, &id), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_get(w, "people", 1, NULL, NULL, &found), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_get(w, "people", 1, &out, NULL, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_get(w, NULL, 1, &out, NULL, &found), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_get(w, BAD_UTF8, 1, &out, NULL, &found), OBJ_INVALID_ARGUMENT);
    uint64_t cnt = 0;
    CHECK_OK(obj_collection_count(w, "people", &cnt));
    CHECK(cnt == 2);

    /* Upsert, replace, delete. */
    CHECK_OK(obj_doc_upsert(w, "people", 10, J("{\"name\":\"cy\"}"), 1, &created));
    CHECK(created);
    CHECK_OK(obj_doc_upsert(w, "people", 10, J("{\"name\":\"cy2\"}"), 2, &created));
    CHECK(!created);
    CHECK_OK(obj_doc_upsert(w, "people", 10, J("{\"name\":\"cy3\"}"), 2, NULL));
    CHECK_STATUS(obj_doc_upsert(w, "people", 10, J("nope"), 2, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_doc_insert(w, "people", J("{\"name\":\"dee\"}"), 0, &id));
    CHECK(id == 11); /* the upsert moved next_id past 10 */
    CHECK_OK(obj_doc_replace(w, "people", 11, J("{\"name\":\"dee2\"}"), 4));
    CHECK_OK(obj_doc_get(w, "people", 11, &out, &version, &found));
    CHECK(found && version == 4);
    check_eq_free(&out, "{\"name\":\"dee2\"}");
    CHECK_STATUS(obj_doc_replace(w, "people", 500, J("{}"), 0), OBJ_NOT_FOUND);
    CHECK_STATUS(obj_doc_replace(w, "ghosts", 1, J("{}"), 0), OBJ_NOT_FOUND);
    CHECK_STATUS(obj_doc_replace(w, "people", 11, J("{"), 0), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_doc_delete(w, "people", 11, &existed));
    CHECK(existed);
    CHECK_OK(obj_doc_delete(w, "people", 11, &existed));
    CHECK(!existed);
    CHECK_OK(obj_doc_delete(w, "ghosts", 1, &existed));
    CHECK(!existed);
    CHECK_OK(obj_doc_delete(w, "people", 12345, NULL));
    CHECK_STATUS(obj_doc_delete(w, NULL, 1, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_collection_info(w, "ghosts", &out), OBJ_NOT_FOUND); /* reads created nothing */

    /* Batches. */
    uint64_t ids[4] = {0};
    size_t count = 99;
    CHECK_OK(obj_doc_insert_many(w, "batch", J("[{\"i\":1},{\"i\":2},{\"i\":3}]"), 9, ids, 4, &count));
    CHECK(count == 3 && ids[0] == 1 && ids[1] == 2 && ids[2] == 3);
    count = 99;
    CHECK_OK(obj_doc_insert_many(w, "batch2", J("[]"), 0, NULL, 0, &count));
    CHECK(count == 0);
    CHECK_STATUS(obj_collection_info(w, "batch2", &out), OBJ_NOT_FOUND);
    /* A refused batch into a new collection leaves no collection either. */
    CHECK_STATUS(obj_doc_insert_many(w, "batch3", J("[{\"i\":1},7]"), 0, ids, 4, &count), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "[1]") != NULL);
    CHECK_STATUS(obj_doc_insert_many(w, "batch3", J("[{\"i\":1},{\"i\":2}]"), 0, ids, 1, &count),
                 OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "2 documents but out_cap is 1") != NULL);
    CHECK_STATUS(obj_collection_info(w, "batch3", &out), OBJ_NOT_FOUND);
    CHECK(count == 0);
    count = 99;
    ids[0] = 42;
    CHECK_STATUS(obj_doc_insert_many(w, "batch", J("[{\"i\":4},{\"i\":5}]"), 0, ids, 1, &count), OBJ_INVALID_ARGUMENT);
    CHECK(count == 99 && ids[0] == 42);
    CHECK(strstr(obj_last_error(), "out_cap") != NULL);
    CHECK_STATUS(obj_doc_insert_many(w, "batch", J("[{\"i\":4},7]"), 0, ids, 4, &count), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "[1]") != NULL);
    CHECK_STATUS(obj_doc_insert_many(w, "batch", J("{\"i\":4}"), 0, ids, 4, &count), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_insert_many(w, "batch", J("[{\"i\":4}"), 0, ids, 4, &count), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_insert_many(w, "batch", J("[{\"i\":4}]"), 0, NULL, 4, &count), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_insert_many(w, "batch", J("[{\"i\":4}]"), 0, ids, 4, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_insert_many(w, NULL, J("[{\"i\":4}]"), 0, ids, 4, &count), OBJ_INVALID_ARGUMENT);
    CHECK(count == 99);
    CHECK_OK(obj_collection_count(w, "batch", &cnt));
    CHECK(cnt == 3);

    uint64_t want[4] = {3, 77, 1, 3};
    CHECK_OK(obj_doc_get_many(w, "batch", want, 4, &out));
    check_eq_free(&out, "[[9,{\"i\":3}],null,[9,{\"i\":1}],[9,{\"i\":3}]]");
    /* Runs of consecutive ids (read in one tree walk) with gaps around and
       inside, a short run, a descending one, and the top of the id range. */
    uint64_t runs[13] = {0, 1, 2, 3, 4, 5, 2, 3, 3, 2, 1, UINT64_MAX - 1, UINT64_MAX};
    CHECK_OK(obj_doc_get_many(w, "batch", runs, 13, &out));
    check_eq_free(&out, "[null,[9,{\"i\":1}],[9,{\"i\":2}],[9,{\"i\":3}],null,null,[9,{\"i\":2}],[9,{\"i\":3}],"
                        "[9,{\"i\":3}],[9,{\"i\":2}],[9,{\"i\":1}],null,null]");
    CHECK_OK(obj_doc_get_many_plain(w, "batch", runs, 6, &out));
    check_eq_free(&out, "[null,{\"i\":1},{\"i\":2},{\"i\":3},null,null]");
    CHECK_OK(obj_doc_get_many(w, "batch", NULL, 0, &out));
    check_eq_free(&out, "[]");
    CHECK_OK(obj_doc_get_many(w, "nowhere", want, 2, &out));
    check_eq_free(&out, "[null,null]");
    CHECK_STATUS(obj_doc_get_many(w, "batch", NULL, 2, &out), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_get_many(w, "batch", want, 2, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_get_many(w, BAD_UTF8, want, 2, &out), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_commit(w));
    CHECK_STATUS(obj_doc_insert(w, "people", J("{}"), 0, &id), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_get(w, "people", 1, &out, NULL, &found), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_insert_many(w, "batch", J("[]"), 0, NULL, 0, &count), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_free(w));

    /* A read transaction refuses every write. */
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_STATUS(obj_doc_insert(r, "people", J("{}"), 0, &id), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_insert_many(r, "people", J("[{}]"), 0, ids, 4, &count), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_upsert(r, "people", 1, J("{}"), 0, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_replace(r, "people", 1, J("{}"), 0), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_delete(r, "people", 1, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_raw_insert(r, "blobs", J("x"), &id), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_raw_upsert(r, "blobs", 1, J("x"), NULL), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_doc_get(r, "people", 10, &out, &version, &found));
    CHECK(found && version == 2);
    check_eq_free(&out, "{\"name\":\"cy3\"}");
    CHECK_OK(obj_txn_free(r));
}

static void test_raw_and_large(obj_db *db) {
    obj_txn *w = NULL, *r = NULL;
    obj_bytes out = {0};
    uint64_t id = 0;
    bool found = false, created = false;
    const uint8_t blob[] = {0, 'o', 'p', 0xff, 0};

    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_raw_insert(w, "blobs", blob, sizeof blob, &id));
    CHECK(id == 1);
    CHECK_OK(obj_raw_insert(w, "blobs", NULL, 0, &id)); /* an empty payload */
    CHECK(id == 2);
    CHECK_OK(obj_raw_insert(w, "rawauto", J("auto"), &id)); /* created raw on first use */
    CHECK_OK(obj_collection_info(w, "rawauto", &out));
    CHECK(has(out, "\"kind\":\"raw\""));
    obj_bytes_free(&out);
    CHECK_OK(obj_raw_get(w, "blobs", 1, &out, &found));
    CHECK(found && out.len == sizeof blob && memcmp(out.data, blob, sizeof blob) == 0);
    obj_bytes_free(&out);
    CHECK_OK(obj_raw_get(w, "blobs", 2, &out, &found));
    CHECK(found && out.data == NULL && out.len == 0);
    CHECK_OK(obj_raw_get(w, "blobs", 3, &out, &found));
    CHECK(!found);
    CHECK_OK(obj_raw_get(w, "nothing", 3, &out, &found));
    CHECK(!found);
    CHECK_OK(obj_raw_upsert(w, "blobs", 7, J("seven"), &created));
    CHECK(created);
    CHECK_OK(obj_raw_upsert(w, "blobs", 7, J("SEVEN"), &created));
    CHECK(!created);
    CHECK_OK(obj_raw_upsert(w, "blobs", 8, J("eight"), NULL));
    CHECK_OK(obj_raw_get(w, "blobs", 7, &out, &found));
    check_eq_free(&out, "SEVEN");
    bool existed = false;
    CHECK_OK(obj_doc_delete(w, "blobs", 8, &existed)); /* delete works on raw collections */
    CHECK(existed);

    /* Kind mismatches. */
    CHECK_STATUS(obj_raw_insert(w, "people", J("x"), &id), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_raw_upsert(w, "people", 1, J("x"), NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_raw_get(w, "people", 1, &out, &found), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "obj_doc_") != NULL);
    CHECK_STATUS(obj_doc_insert(w, "blobs", J("{}"), 0, &id), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_get(w, "blobs", 1, &out, NULL, &found), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "obj_raw_") != NULL);
    uint64_t one = 1;
    CHECK_STATUS(obj_doc_get_many(w, "blobs", &one, 1, &out), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_replace(w, "blobs", 1, J("{}"), 0), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_upsert(w, "blobs", 1, J("{}"), 0, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_index_create(w, "blobs", J("{\"name\":\"i\",\"fields\":[\"a\"]}")), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_raw_insert(w, "blobs", NULL, 3, &id), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_raw_insert(w, "blobs", blob, 1, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_raw_insert(w, BAD_UTF8, blob, 1, &id), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_raw_get(w, "blobs", 1, NULL, &found), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_raw_get(w, "blobs", 1, &out, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_raw_upsert(w, NULL, 1, blob, 1, NULL), OBJ_INVALID_ARGUMENT);

    /* A 16 MiB document round trip. */
    size_t big = 16u << 20;
    char *json = malloc(big + 64);
    CHECK(json != NULL);
    size_t pos = (size_t)sprintf(json, "{\"blob\":\"");
    memset(json + pos, 'x', big);
    pos += big;
    pos += (size_t)sprintf(json + pos, "\",\"tail\":1}");
    CHECK_OK(obj_doc_insert(w, "big", (const uint8_t *)json, pos, 1, &id));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_doc_get(r, "big", id, &out, NULL, &found));
    CHECK(found && out.len == pos && memcmp(out.data, json, pos) == 0);
    obj_bytes_free(&out);
    /* 16 MiB of raw bytes too. */
    CHECK_OK(obj_txn_free(r));
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_raw_insert(w, "bigraw", (const uint8_t *)json, big, &id));
    CHECK_OK(obj_raw_get(w, "bigraw", id, &out, &found));
    CHECK(found && out.len == big && memcmp(out.data, json, big) == 0);
    obj_bytes_free(&out);
    CHECK_OK(obj_txn_rollback(w));
    CHECK_OK(obj_txn_free(w));
    free(json);
}

static void test_indexes(obj_db *db) {
    obj_txn *w = NULL, *r = NULL;
    obj_bytes out = {0};
    uint64_t id = 0, cnt = 0;
    uint32_t version = 0;
    bool found = false;

    /* The index key limit (obj_index_create): about 1341 bytes with 4 KiB
     * pages; a list is indexed whole as well as element by element. */
    {
        static char doc[4000];
        CHECK_OK(obj_txn_begin_write(db, &w));
        CHECK_OK(obj_index_create(w, "limits", J("{\"name\":\"by_k\",\"kind\":\"unique\",\"fields\":[\"k\"]}")));
        CHECK_OK(obj_index_create(w, "limits", J("{\"name\":\"by_tag\",\"kind\":\"multi\",\"fields\":[\"tags\"]}")));
        snprintf(doc, sizeof doc, "{\"k\":\"%01300d\"}", 0);
        CHECK_OK(obj_doc_insert(w, "limits", J(doc), 0, &id));
        snprintf(doc, sizeof doc, "{\"k\":\"%01400d\"}", 0);
        CHECK_ERR(obj_doc_insert(w, "limits", J(doc), 0, &id), OBJ_INVALID_ARGUMENT, "too long for index");
        /* 300 short tags: each fits, the whole list does not. */
        size_t n = (size_t)snprintf(doc, sizeof doc, "{\"tags\":[");
        for (int i = 0; i < 300; i++) n += (size_t)snprintf(doc + n, sizeof doc - n, "%s\"t%03d\"", i ? "," : "", i);
        snprintf(doc + n, sizeof doc - n, "]}");
        CHECK_ERR(obj_doc_insert(w, "limits", J(doc), 0, &id), OBJ_INVALID_ARGUMENT,
                  "a list is indexed whole as well as element by element");
        CHECK_OK(obj_doc_insert(w, "limits", J("{\"tags\":[\"t1\",\"t2\"]}"), 0, &id));
        CHECK_OK(obj_txn_rollback(w));
        CHECK_OK(obj_txn_free(w));
    }

    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_doc_insert(w, "acct", J("{\"email\":\"a@x\",\"city\":\"Oslo\",\"n\":1}"), 5, &id));
    CHECK_OK(obj_doc_insert(w, "acct", J("{\"email\":\"b@x\",\"city\":\"Rome\",\"n\":2}"), 5, &id));
    CHECK_OK(obj_doc_insert(w, "acct", J("{\"email\":\"c@x\",\"city\":\"Oslo\",\"n\":3}"), 5, &id));
    CHECK_OK(obj_index_create(w, "acct", J("{\"name\":\"by_email\",\"kind\":\"unique\",\"fields\":[\"email\"]}")));
    CHECK_OK(obj_index_create(w, "acct", J("{\"name\":\"by_email\",\"kind\":\"unique\",\"fields\":[\"email\"]}")));
    CHECK_OK(obj_index_create(w, "acct", J("{\"name\":\"city_n\",\"fields\":[\"city\",\"n\"]}")));
    CHECK_OK(obj_index_create(w, "acct", J("{\"name\":\"tags\",\"kind\":\"multi\",\"fields\":[\"tags\"]}")));
    CHECK_STATUS(obj_index_create(w, "acct", J("{\"name\":\"by_email\",\"kind\":\"standard\",\"fields\":[\"email\"]}")),
                 OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "another spec") != NULL);
    /* A unique index over duplicate values fails and leaves no trace. */
    CHECK_STATUS(obj_index_create(w, "acct", J("{\"name\":\"by_city\",\"kind\":\"unique\",\"fields\":[\"city\"]}")),
                 OBJ_CONSTRAINT);
    /* Malformed specs. */
    const char *bad_specs[] = {
        "{\"name\":\"x\"",
        "[]",
        "{\"fields\":[\"a\"]}",
        "{\"name\":\"x\",\"fields\":[]}",
        "{\"name\":\"x\",\"fields\":\"a\"}",
        "{\"name\":\"x\",\"fields\":[1]}",
        "{\"name\":\"x\",\"fields\":[\"a..b\"]}",
        "{\"name\":\"x\",\"kind\":\"bogus\",\"fields\":[\"a\"]}",
        "{\"name\":\"x\",\"kind\":3,\"fields\":[\"a\"]}",
        "{\"name\":\"x/y\",\"fields\":[\"a\"]}",
        "{\"name\":\"x\",\"fields\":[\"a\"],\"extra\":1}",
    };
    for (size_t i = 0; i < sizeof bad_specs / sizeof bad_specs[0]; i++) {
        CHECK_STATUS(obj_index_create(w, "acct", J(bad_specs[i])), OBJ_INVALID_ARGUMENT);
    }
    const char bad_spec_utf8[] = {'{', '"', 'n', (char)0xff, '"', ':', '1', '}', 0};
    CHECK_STATUS(obj_index_create(w, "acct", J(bad_spec_utf8)), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_index_create(w, NULL, J("{\"name\":\"x\",\"fields\":[\"a\"]}")), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_index_create(w, "acct", NULL, 4), OBJ_INVALID_ARGUMENT);

    CHECK_OK(obj_index_list(w, "acct", &out));
    check_eq_free(&out,
                  "[{\"fields\":[\"email\"],\"kind\":\"unique\",\"name\":\"by_email\"},"
                  "{\"fields\":[\"city\",\"n\"],\"kind\":\"standard\",\"name\":\"city_n\"},"
                  "{\"fields\":[\"tags\"],\"kind\":\"multi\",\"name\":\"tags\"}]");
    CHECK_OK(obj_index_list(w, "none", &out));
    check_eq_free(&out, "[]");
    CHECK_STATUS(obj_index_list(w, "acct", NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_index_list(w, BAD_UTF8, &out), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_collection_info(w, "acct", &out));
    CHECK(has(out, "\"count\":3") && has(out, "\"next_id\":4") && has(out, "\"name\":\"city_n\""));
    obj_bytes_free(&out);

    CHECK_OK(obj_index_drop(w, "acct", "tags"));
    CHECK_STATUS(obj_index_drop(w, "acct", "tags"), OBJ_NOT_FOUND);
    CHECK_STATUS(obj_index_drop(w, "none", "tags"), OBJ_NOT_FOUND);
    CHECK_STATUS(obj_index_drop(w, "acct", NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_index_drop(w, "acct", BAD_UTF8), OBJ_INVALID_ARGUMENT);

    /* Unique violation on insert: OBJ_CONSTRAINT, no trace, transaction goes on. */
    CHECK_STATUS(obj_doc_insert(w, "acct", J("{\"email\":\"a@x\",\"new\":1}"), 0, &id), OBJ_CONSTRAINT);
    CHECK(strstr(obj_last_error(), "by_email") != NULL);
    CHECK_STATUS(obj_doc_upsert(w, "acct", 2, J("{\"email\":\"a@x\"}"), 0, NULL), OBJ_CONSTRAINT);
    CHECK_STATUS(obj_doc_replace(w, "acct", 2, J("{\"email\":\"c@x\"}"), 0), OBJ_CONSTRAINT);
    uint64_t ids[3];
    size_t count = 0;
    CHECK_STATUS(obj_doc_insert_many(w, "acct", J("[{\"email\":\"d@x\"},{\"email\":\"d@x\"}]"), 0, ids, 3, &count),
                 OBJ_CONSTRAINT);
    CHECK_OK(obj_collection_count(w, "acct", &cnt));
    CHECK(cnt == 3);
    CHECK_OK(obj_collection_info(w, "acct", &out));
    CHECK(has(out, "\"next_id\":4") && !has(out, "by_city"));
    obj_bytes_free(&out);
    CHECK_OK(obj_doc_get(w, "acct", 2, &out, NULL, &found));
    check_eq_free(&out, "{\"email\":\"b@x\",\"city\":\"Rome\",\"n\":2}");

    /* find_unique. */
    CHECK_OK(obj_find_unique(w, "acct", "by_email", J("[\"b@x\"]"), &id, &out, &version, &found));
    CHECK(found && id == 2 && version == 5);
    check_eq_free(&out, "{\"email\":\"b@x\",\"city\":\"Rome\",\"n\":2}");
    id = 99;
    CHECK_OK(obj_find_unique(w, "acct", "by_email", J("[\"zz\"]"), &id, &out, NULL, &found));
    CHECK(!found && id == 99 && out.data == NULL);
    CHECK_OK(obj_find_unique(w, "none", "by_email", J("[\"zz\"]"), &id, &out, NULL, &found));
    CHECK(!found);
    CHECK_STATUS(obj_find_unique(w, "acct", "nope", J("[\"zz\"]"), &id, &out, NULL, &found), OBJ_NOT_FOUND);
    CHECK_STATUS(obj_find_unique(w, "acct", "city_n", J("[\"Oslo\",1]"), &id, &out, NULL, &found),
                 OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_find_unique(w, "acct", "by_email", J("[\"a\",\"b\"]"), &id, &out, NULL, &found),
                 OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_find_unique(w, "acct", "by_email", J("\"a@x\""), &id, &out, NULL, &found),
                 OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_find_unique(w, "acct", "by_email", J("[\"a@x\""), &id, &out, NULL, &found),
                 OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_find_unique(w, "acct", NULL, J("[\"a@x\"]"), &id, &out, NULL, &found), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_find_unique(w, "acct", "by_email", J("[\"a@x\"]"), NULL, &out, NULL, &found),
                 OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_find_unique(w, "acct", "by_email", J("[\"a@x\"]"), &id, NULL, NULL, &found),
                 OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_find_unique(w, "acct", "by_email", J("[\"a@x\"]"), &id, &out, NULL, NULL),
                 OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_find_unique(w, "blobs", "by_email", J("[\"a@x\"]"), &id, &out, NULL, &found),
                 OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_commit(w));
    CHECK_STATUS(obj_index_create(w, "acct", J("{\"name\":\"z\",\"fields\":[\"z\"]}")), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_index_list(w, "acct", &out), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_find_unique(w, "acct", "by_email", J("[\"b@x\"]"), &id, &out, NULL, &found),
                 OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_free(w));

    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_STATUS(obj_index_create(r, "acct", J("{\"name\":\"z\",\"fields\":[\"z\"]}")), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_index_drop(r, "acct", "city_n"), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_find_unique(r, "acct", "by_email", J("[\"c@x\"]"), &id, &out, &version, &found));
    CHECK(found && id == 3);
    obj_bytes_free(&out);
    CHECK_OK(obj_txn_free(r));
}

/* Reads a query cursor to the end; returns the ids seen (at most cap). */
static size_t drain(obj_cursor *c, uint64_t *ids, size_t cap) {
    size_t n = 0;
    for (;;) {
        uint64_t id = 0;
        obj_bytes doc = {0};
        bool done = false;
        CHECK_OK(obj_cursor_next(c, &id, &doc, NULL, &done));
        if (done) break;
        CHECK(doc.len > 0);
        obj_bytes_free(&doc);
        if (n < cap) ids[n] = id;
        n++;
    }
    return n;
}

static void test_queries(obj_db *db) {
    obj_txn *w = NULL, *r = NULL;
    obj_cursor *c = NULL, *c2 = NULL;
    obj_bytes out = {0};
    uint64_t id = 0, ids[16], cnt = 0;
    uint32_t version = 0;
    bool done = false;

    CHECK_OK(obj_txn_begin_read(db, &r));
    const char *q = "{\"collection\":\"acct\",\"filter\":{\"eq\":[\"city\",\"Oslo\"]},\"sort\":[{\"field\":\"n\",\"order\":\"desc\"}]}";
    CHECK_OK(obj_query(r, J(q), &c));
    CHECK_OK(obj_cursor_next(c, &id, &out, &version, &done));
    CHECK(!done && id == 3 && version == 5);
    check_eq_free(&out, "{\"email\":\"c@x\",\"city\":\"Oslo\",\"n\":3}");
    CHECK_OK(obj_cursor_next(c, &id, &out, NULL, &done));
    CHECK(!done && id == 1);
    obj_bytes_free(&out);
    id = 1234;
    CHECK_OK(obj_cursor_next(c, &id, &out, NULL, &done));
    CHECK(done && id == 1234 && out.data == NULL);
    CHECK_OK(obj_cursor_next(c, &id, &out, NULL, &done)); /* stays at the end */
    CHECK(done);
    /* Wrong kinds for cursor functions. */
    CHECK_STATUS(obj_kv_cursor_next(c, &out, &out, &done), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "query cursor") != NULL);
    CHECK_STATUS(obj_dump_cursor_next(c, &id, NULL, &out, &done), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_cursor_next((obj_cursor *)r, &id, &out, NULL, &done), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "handle") != NULL);
    CHECK_STATUS(obj_cursor_next((obj_cursor *)db, &id, &out, NULL, &done), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_cursor_next(NULL, &id, &out, NULL, &done), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_get((obj_txn *)c, "acct", 1, &out, NULL, &done), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_txn_commit((obj_txn *)c), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_cursor_next(c, NULL, &out, NULL, &done), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_cursor_next(c, &id, NULL, NULL, &done), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_cursor_next(c, &id, &out, NULL, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_cursor_free((obj_cursor *)r), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_cursor_free(c));
    CHECK_OK(obj_cursor_free(NULL));

    /* Batches. */
    CHECK_OK(obj_query(r, J("{\"collection\":\"batch\"}"), &c));
    CHECK_OK(obj_cursor_next_batch(c, 2, &out));
    check_eq_free(&out, "[[1,9,{\"i\":1}],[2,9,{\"i\":2}]]");
    CHECK_OK(obj_cursor_next_batch(c, 2, &out));
    check_eq_free(&out, "[[3,9,{\"i\":3}]]");
    CHECK_OK(obj_cursor_next_batch(c, 2, &out));
    check_eq_free(&out, "[]");
    CHECK_STATUS(obj_cursor_next_batch(c, 0, &out), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_cursor_next_batch(c, 1, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_cursor_next_batch(NULL, 1, &out), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_cursor_free(c));
    /* Batches as columns: [[docs], [ids]] or [[docs], [ids], [versions]]. */
    CHECK_OK(obj_query(r, J("{\"collection\":\"batch\"}"), &c));
    CHECK_OK(obj_cursor_next_batch_columns(c, 2, false, &out));
    check_eq_free(&out, "[[{\"i\":1},{\"i\":2}],[1,2]]");
    CHECK_OK(obj_cursor_next_batch_columns(c, 2, true, &out));
    check_eq_free(&out, "[[{\"i\":3}],[3],[9]]");
    CHECK_OK(obj_cursor_next_batch_columns(c, 2, true, &out));
    check_eq_free(&out, "[[],[],[]]");
    CHECK_OK(obj_cursor_next_batch_columns(c, 2, false, &out));
    check_eq_free(&out, "[[],[]]");
    CHECK_STATUS(obj_cursor_next_batch_columns(c, 0, false, &out), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_cursor_next_batch_columns(c, 1, false, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_cursor_next_batch_columns(NULL, 1, false, &out), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_cursor_free(c));
    CHECK_OK(obj_query(r, J("{\"collection\":\"batch\",\"filter\":{\"gt\":[\"i\",1]}}"), &c));
    CHECK_OK(obj_cursor_next_batch_columns(c, 5, true, &out));
    check_eq_free(&out, "[[{\"i\":2},{\"i\":3}],[2,3],[9,9]]");
    CHECK_OK(obj_cursor_free(c));

    /* Index range, offset and limit; a missing collection has no rows. */
    CHECK_OK(obj_query(r, J("{\"collection\":\"acct\",\"index\":{\"name\":\"city_n\",\"ge\":[\"Oslo\"],\"le\":[\"Oslo\"],\"reverse\":true}}"), &c));
    CHECK(drain(c, ids, 16) == 2 && ids[0] == 3 && ids[1] == 1);
    CHECK_OK(obj_cursor_free(c));
    CHECK_OK(obj_query(r, J("{\"collection\":\"people\",\"offset\":1,\"limit\":1}"), &c));
    CHECK(drain(c, ids, 16) == 1 && ids[0] == 2);
    CHECK_OK(obj_cursor_free(c));
    CHECK_OK(obj_query(r, J("{\"collection\":\"nothing_here\",\"filter\":{\"eq\":[\"a\",1]}}"), &c));
    CHECK(drain(c, ids, 16) == 0);
    CHECK_OK(obj_cursor_next_batch(c, 5, &out));
    check_eq_free(&out, "[]");
    CHECK_OK(obj_cursor_free(c));
    /* Raw collections: no filter yields {"$bytes":...}; a filter is refused. */
    CHECK_OK(obj_query(r, J("{\"collection\":\"blobs\",\"limit\":1}"), &c));
    CHECK_OK(obj_cursor_next(c, &id, &out, NULL, &done));
    CHECK(!done && id == 1);
    check_eq_free(&out, "{\"$bytes\":\"AG9w/wA=\"}");
    CHECK_OK(obj_cursor_free(c));
    CHECK_STATUS(obj_query(r, J("{\"collection\":\"blobs\",\"filter\":{\"eq\":[\"a\",1]}}"), &c), OBJ_INVALID_ARGUMENT);

    /* Malformed queries. */
    const char *bad_queries[] = {
        "{\"collection\":\"acct\"",
        "{\"collection\":\"acct\",\"filter\":{\"gtt\":[\"a\",1]}}",
        "{\"collection\":\"acct\",\"limit\":-1}",
        "{\"filter\":true}",
        "{\"collection\":\"acct\",\"count_only\":true}",
        "{\"collection\":\"a/b\"}",
        "[]",
    };
    for (size_t i = 0; i < sizeof bad_queries / sizeof bad_queries[0]; i++) {
        c = NULL;
        CHECK_STATUS(obj_query(r, J(bad_queries[i]), &c), OBJ_INVALID_ARGUMENT);
        CHECK(c == NULL);
    }
    const char bad_q_utf8[] = {'{', '"', 'c', (char)0xc3, '"', ':', '1', '}', 0};
    CHECK_STATUS(obj_query(r, J(bad_q_utf8), &c), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_query(r, J("{\"collection\":\"acct\",\"index\":{\"name\":\"nope\"}}"), &c), OBJ_NOT_FOUND);
    CHECK_STATUS(obj_query(r, NULL, 3, &c), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_query(r, J("{\"collection\":\"acct\"}"), NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_query(NULL, J("{\"collection\":\"acct\"}"), &c), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_query((obj_txn *)db, J("{\"collection\":\"acct\"}"), &c), OBJ_INVALID_ARGUMENT);

    /* A sort over the buffer limit fails at the first step, then stays failed. */
    CHECK_OK(obj_query(r, J("{\"collection\":\"acct\",\"sort\":[\"n\"],\"sort_buffer_limit\":1}"), &c));
    CHECK_STATUS(obj_cursor_next(c, &id, &out, NULL, &done), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "sort_buffer_limit") != NULL);
    CHECK_STATUS(obj_cursor_next_batch(c, 3, &out), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "failed earlier") != NULL);
    CHECK_OK(obj_cursor_free(c));

    /* Count and explain. */
    CHECK_OK(obj_query_count(r, J("{\"collection\":\"acct\",\"filter\":{\"eq\":[\"city\",\"Oslo\"]}}"), &cnt));
    CHECK(cnt == 2);
    CHECK_OK(obj_query_count(r, J("{\"collection\":\"acct\",\"limit\":1,\"count_only\":true}"), &cnt));
    CHECK(cnt == 1);
    CHECK_OK(obj_query_count(r, J("{\"collection\":\"missing\"}"), &cnt));
    CHECK(cnt == 0);
    CHECK_STATUS(obj_query_count(r, J("{\"collection\":"), &cnt), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_query_count(r, J("{\"collection\":\"acct\"}"), NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_query_count(NULL, J("{\"collection\":\"acct\"}"), &cnt), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_query_explain(r, J("{\"collection\":\"acct\",\"filter\":{\"eq\":[\"email\",\"a@x\"]}}"), &out));
    CHECK(has(out, "\"access\":\"index\"") && has(out, "\"index\":\"by_email\"") && has(out, "\"plan\":\"INDEX"));
    obj_bytes_free(&out);
    CHECK_OK(obj_query_explain(r, J("{\"collection\":\"acct\",\"sort\":[\"n\"]}"), &out));
    CHECK(has(out, "\"access\":\"scan\"") && has(out, "\"sort_in_memory\":true"));
    obj_bytes_free(&out);
    CHECK_OK(obj_query_explain(r, J("{\"collection\":\"missing\"}"), &out));
    CHECK(has(out, "\"exists\":false") && has(out, "\"access\":\"none\""));
    obj_bytes_free(&out);
    CHECK_STATUS(obj_query_explain(r, J("{}"), &out), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_query_explain(r, J("{\"collection\":\"acct\"}"), NULL), OBJ_INVALID_ARGUMENT);

    /* Several cursors at once on one snapshot, unaffected by a concurrent commit. */
    CHECK_OK(obj_query(r, J("{\"collection\":\"batch\"}"), &c));
    CHECK_OK(obj_query(r, J("{\"collection\":\"batch\",\"sort\":[{\"field\":\"i\",\"order\":\"desc\"}]}"), &c2));
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_doc_insert(w, "batch", J("{\"i\":4}"), 0, &id));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_cursor_next(c2, &id, &out, NULL, &done));
    CHECK(id == 3);
    obj_bytes_free(&out);
    CHECK(drain(c, ids, 16) == 3);
    CHECK(drain(c2, ids, 16) == 2);
    /* After the read transaction ends, its cursors refuse (but free fine). */
    CHECK_OK(obj_cursor_free(c2));
    CHECK_OK(obj_query(r, J("{\"collection\":\"batch\"}"), &c2));
    CHECK_OK(obj_txn_commit(r));
    CHECK_STATUS(obj_cursor_next(c2, &id, &out, NULL, &done), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "transaction already ended") != NULL);
    CHECK_STATUS(obj_cursor_next_batch(c, 1, &out), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_query(r, J("{\"collection\":\"batch\"}"), &c), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_query_count(r, J("{\"collection\":\"batch\"}"), &cnt), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_query_explain(r, J("{\"collection\":\"batch\"}"), &out), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_cursor_free(c));
    CHECK_OK(obj_txn_free(r));
    CHECK_STATUS(obj_cursor_next(c2, &id, &out, NULL, &done), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_cursor_free(c2)); /* after the transaction handle is gone */

    /* A cursor on a write transaction sees its writes so far; a later write ends it. */
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_doc_insert(w, "wq", J("{\"k\":1}"), 0, &id));
    CHECK_OK(obj_doc_insert(w, "wq", J("{\"k\":2}"), 0, &id));
    CHECK_OK(obj_query(w, J("{\"collection\":\"wq\"}"), &c));
    CHECK_OK(obj_query(w, J("{\"collection\":\"wq\"}"), &c2));
    CHECK_OK(obj_cursor_next(c, &id, &out, NULL, &done));
    CHECK(!done && id == 1);
    obj_bytes_free(&out);
    CHECK_OK(obj_doc_get(w, "wq", 2, &out, NULL, &done)); /* reads do not end it */
    obj_bytes_free(&out);
    CHECK_OK(obj_cursor_next(c, &id, &out, NULL, &done));
    CHECK(!done && id == 2);
    obj_bytes_free(&out);
    CHECK_OK(obj_doc_insert(w, "wq", J("{\"k\":3}"), 0, &id));
    CHECK_STATUS(obj_cursor_next(c, &id, &out, NULL, &done), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "changed under the cursor") != NULL);
    CHECK_STATUS(obj_cursor_next_batch(c2, 4, &out), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_cursor_free(c2));
    /* A call refused before it writes (here a JSON parse error) leaves cursors alone; a write ends them. */
    CHECK_OK(obj_query(w, J("{\"collection\":\"wq\"}"), &c2));
    CHECK_STATUS(obj_doc_insert(w, "wq", J("{\"k\""), 0, &id), OBJ_INVALID_ARGUMENT); /* parse error: no write */
    CHECK_OK(obj_cursor_next_batch(c2, 10, &out));
    check_eq_free(&out, "[[1,0,{\"k\":1}],[2,0,{\"k\":2}],[3,0,{\"k\":3}]]");
    CHECK_OK(obj_kv_put(w, "ns", J("k"), J("v")));
    CHECK_STATUS(obj_cursor_next_batch(c2, 10, &out), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_cursor_free(c2));
    CHECK_OK(obj_query(w, J("{\"collection\":\"wq\"}"), &c2));
    CHECK_OK(obj_txn_rollback(w));
    CHECK_STATUS(obj_cursor_next(c2, &id, &out, NULL, &done), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "rolled back") != NULL);
    CHECK_OK(obj_cursor_free(c2));
    CHECK_OK(obj_txn_free(w));
    /* Freeing a write transaction with an open cursor. */
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_query(w, J("{\"collection\":\"people\"}"), &c2));
    CHECK_OK(obj_txn_free(w));
    CHECK_STATUS(obj_cursor_next(c2, &id, &out, NULL, &done), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "freed") != NULL);
    CHECK_OK(obj_cursor_free(c));
    CHECK_OK(obj_cursor_free(c2));
    /* A cursor never freed is released with its transaction's last reference. */
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_query(r, J("{\"collection\":\"people\"}"), &c));
    CHECK_OK(obj_txn_free(r));
    CHECK_OK(obj_cursor_free(c));
}

static void test_kv_scans(obj_db *db) {
    obj_txn *w = NULL, *r = NULL;
    obj_cursor *c = NULL;
    obj_bytes out = {0}, k = {0}, v = {0};
    bool done = false, existed = false;

    CHECK_OK(obj_txn_begin_write(db, &w));
    const char *keys[] = {"a1", "a2", "b1", "b2", "c"};
    for (int i = 0; i < 5; i++) {
        CHECK_OK(obj_kv_put(w, "scan", J(keys[i]), (const uint8_t *)&i, sizeof i));
    }
    CHECK_OK(obj_kv_put(w, "other", J("x"), NULL, 0));
    CHECK_OK(obj_kv_put(w, "gone", J("x"), J("y")));
    CHECK_OK(obj_kv_list(w, &out));
    check_eq_free(&out, "[\"gone\",\"other\",\"scan\"]");
    CHECK_OK(obj_kv_drop(w, "gone", &existed));
    CHECK(existed);
    CHECK_OK(obj_kv_drop(w, "gone", &existed));
    CHECK(!existed);
    CHECK_OK(obj_kv_drop(w, "gone", NULL));
    /* An empty namespace exists once created; creating again keeps it. */
    bool created = false;
    CHECK_OK(obj_kv_create(w, "empty", &created));
    CHECK(created);
    CHECK_OK(obj_kv_create(w, "empty", &created));
    CHECK(!created);
    CHECK_OK(obj_kv_create(w, "other", &created));
    CHECK(!created);
    CHECK_OK(obj_kv_list(w, &out));
    check_eq_free(&out, "[\"empty\",\"other\",\"scan\"]");
    CHECK_OK(obj_kv_drop(w, "empty", NULL));
    CHECK_STATUS(obj_kv_create(w, NULL, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_create(w, BAD_UTF8, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_create(w, "", NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_drop(w, NULL, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_drop(w, BAD_UTF8, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_list(w, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_commit(w));
    CHECK_STATUS(obj_kv_drop(w, "scan", NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_create(w, "new", NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_list(w, &out), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_scan(w, "scan", NULL, 0, NULL, 0, NULL, 0, false, &c), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_free(w));

    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_STATUS(obj_kv_drop(r, "scan", NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_create(r, "new", NULL), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_kv_list(r, &out));
    check_eq_free(&out, "[\"other\",\"scan\"]");

    /* Whole namespace, forward. */
    char seen[64];
    size_t n;
#define SCAN(start, slen, end, elen, pre, plen, rev)                                   \
    do {                                                                               \
        CHECK_OK(obj_kv_scan(r, "scan", start, slen, end, elen, pre, plen, rev, &c)); \
        seen[0] = 0;                                                                   \
        n = 0;                                                                         \
        for (;;) {                                                                     \
            CHECK_OK(obj_kv_cursor_next(c, &k, &v, &done));                            \
            if (done) break;                                                           \
            CHECK(v.len == sizeof(int));                                               \
            strncat(seen, (const char *)k.data, k.len);                                \
            strcat(seen, ",");                                                         \
            obj_bytes_free(&k);                                                        \
            obj_bytes_free(&v);                                                        \
            n++;                                                                       \
        }                                                                              \
        CHECK_OK(obj_cursor_free(c));                                                  \
    } while (0)
    SCAN(NULL, 0, NULL, 0, NULL, 0, false);
    CHECK(strcmp(seen, "a1,a2,b1,b2,c,") == 0 && n == 5);
    SCAN(NULL, 0, NULL, 0, NULL, 0, true);
    CHECK(strcmp(seen, "c,b2,b1,a2,a1,") == 0);
    SCAN((const uint8_t *)"a2", 2, (const uint8_t *)"b2", 2, NULL, 0, false);
    CHECK(strcmp(seen, "a2,b1,") == 0);
    SCAN((const uint8_t *)"a2", 2, (const uint8_t *)"b2", 2, NULL, 0, true);
    CHECK(strcmp(seen, "b1,a2,") == 0);
    SCAN((const uint8_t *)"", 0, (const uint8_t *)"b", 1, NULL, 0, false);
    CHECK(strcmp(seen, "a1,a2,") == 0);
    SCAN(NULL, 0, (const uint8_t *)"", 0, NULL, 0, false); /* [start, "") is empty */
    CHECK(n == 0);
    SCAN(NULL, 0, NULL, 0, (const uint8_t *)"b", 1, false);
    CHECK(strcmp(seen, "b1,b2,") == 0);
    SCAN(NULL, 0, NULL, 0, (const uint8_t *)"b", 1, true);
    CHECK(strcmp(seen, "b2,b1,") == 0);
    SCAN(NULL, 0, NULL, 0, (const uint8_t *)"", 0, false); /* empty prefix: everything */
    CHECK(n == 5);
    SCAN(NULL, 0, NULL, 0, (const uint8_t *)"zz", 2, false);
    CHECK(n == 0);
    /* A missing namespace is empty. */
    CHECK_OK(obj_kv_scan(r, "nope", NULL, 0, NULL, 0, NULL, 0, false, &c));
    CHECK_OK(obj_kv_cursor_next(c, &k, &v, &done));
    CHECK(done && k.data == NULL);
    /* Kind and argument errors. */
    uint64_t id;
    CHECK_STATUS(obj_cursor_next(c, &id, &out, NULL, &done), OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "obj_kv_cursor_next") != NULL);
    CHECK_STATUS(obj_cursor_next_batch(c, 1, &out), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_cursor_next(c, NULL, &v, &done), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_cursor_next(c, &k, NULL, &done), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_cursor_next(c, &k, &v, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_cursor_next(NULL, &k, &v, &done), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_cursor_next((obj_cursor *)r, &k, &v, &done), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_cursor_free(c));
    c = NULL;
    CHECK_STATUS(obj_kv_scan(r, "scan", (const uint8_t *)"a", 1, NULL, 0, (const uint8_t *)"a", 1, false, &c),
                 OBJ_INVALID_ARGUMENT);
    CHECK(strstr(obj_last_error(), "prefix") != NULL);
    CHECK_STATUS(obj_kv_scan(r, "scan", NULL, 0, (const uint8_t *)"a", 1, (const uint8_t *)"a", 1, false, &c),
                 OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_scan(r, "scan", NULL, 3, NULL, 0, NULL, 0, false, &c), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_scan(r, "scan", NULL, 0, NULL, 0, NULL, 0, false, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_scan(r, NULL, NULL, 0, NULL, 0, NULL, 0, false, &c), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_scan(r, BAD_UTF8, NULL, 0, NULL, 0, NULL, 0, false, &c), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_scan(r, "a/b", NULL, 0, NULL, 0, NULL, 0, false, &c), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_scan((obj_txn *)db, "scan", NULL, 0, NULL, 0, NULL, 0, false, &c), OBJ_INVALID_ARGUMENT);
    CHECK(c == NULL);
    /* A scan cursor after its transaction ended. */
    CHECK_OK(obj_kv_scan(r, "scan", NULL, 0, NULL, 0, NULL, 0, false, &c));
    CHECK_OK(obj_kv_cursor_next(c, &k, &v, &done));
    obj_bytes_free(&k);
    obj_bytes_free(&v);
    CHECK_OK(obj_txn_rollback(r));
    CHECK_STATUS(obj_kv_cursor_next(c, &k, &v, &done), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_cursor_free(c));
    CHECK_OK(obj_txn_free(r));

    /* On a write transaction, a kv write ends open scans. */
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_kv_scan(w, "scan", NULL, 0, NULL, 0, NULL, 0, false, &c));
    CHECK_OK(obj_kv_delete(w, "scan", J("c"), NULL));
    CHECK_STATUS(obj_kv_cursor_next(c, &k, &v, &done), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_cursor_free(c));
    CHECK_OK(obj_txn_free(w));
}

static void test_dump_and_stat(obj_db *db) {
    obj_txn *r = NULL;
    obj_cursor *c = NULL;
    obj_bytes data = {0}, out = {0};
    uint64_t id = 0;
    uint32_t version = 0;
    bool done = false;

    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_collection_dump(r, "blobs", &c));
    CHECK_OK(obj_dump_cursor_next(c, &id, &version, &data, &done));
    CHECK(!done && id == 1 && version == 0);
    /* The stored record ends with the raw payload. */
    CHECK(data.len > 5 && memcmp(data.data + data.len - 5, "\0op\xff\0", 5) == 0);
    obj_bytes_free(&data);
    size_t n = 1;
    for (;;) {
        CHECK_OK(obj_dump_cursor_next(c, &id, NULL, &data, &done));
        if (done) break;
        obj_bytes_free(&data);
        n++;
    }
    CHECK(n == 3); /* ids 1, 2, 7 */
    CHECK_STATUS(obj_cursor_next(c, &id, &out, NULL, &done), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_kv_cursor_next(c, &out, &data, &done), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_dump_cursor_next(c, NULL, NULL, &data, &done), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_dump_cursor_next(c, &id, NULL, NULL, &done), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_dump_cursor_next(c, &id, NULL, &data, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_dump_cursor_next(NULL, &id, NULL, &data, &done), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_cursor_free(c));
    CHECK_OK(obj_collection_dump(r, "batch", &c));
    CHECK_OK(obj_dump_cursor_next(c, &id, &version, &data, &done));
    CHECK(!done && id == 1 && version == 9 && data.len > 0);
    obj_bytes_free(&data);
    CHECK_OK(obj_cursor_free(c));
    CHECK_OK(obj_collection_dump(r, "missing", &c));
    CHECK_OK(obj_dump_cursor_next(c, &id, &version, &data, &done));
    CHECK(done);
    CHECK_OK(obj_cursor_free(c));
    CHECK_STATUS(obj_collection_dump(r, NULL, &c), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_collection_dump(r, BAD_UTF8, &c), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_collection_dump(r, "blobs", NULL), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_collection_dump(r, "blobs", &c));
    CHECK_OK(obj_txn_commit(r));
    CHECK_STATUS(obj_dump_cursor_next(c, &id, &version, &data, &done), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_collection_dump(r, "blobs", &c), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_cursor_free(c));
    CHECK_OK(obj_txn_free(r));

    CHECK_OK(obj_db_stat_json(db, &out));
    CHECK(has(out, "\"collections\":[") && has(out, "\"name\":\"acct\""));
    CHECK(has(out, "\"doc_count\":3") && has(out, "\"kind\":\"documents\"") && has(out, "\"kind\":\"raw\""));
    CHECK(has(out, "\"key_paths\":[\"city\",\"n\"]") && has(out, "\"kind\":\"unique\""));
    obj_bytes_free(&out);
    CHECK_OK(obj_db_integrity_check(db, NULL));
}

/* Runs of writes reuse the collection state of the previous write; every
 * other change in between must be seen by the next write. */
static void test_write_runs(obj_db *db) {
    obj_txn *w = NULL;
    obj_bytes out = {0};
    uint64_t id = 0, cnt = 0;
    bool created = false;

    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_doc_insert(w, "run", J("{\"u\":1}"), 0, &id));
    CHECK_OK(obj_doc_insert(w, "run", J("{\"u\":2}"), 0, &id));
    CHECK(id == 2);
    /* An index created between two inserts is enforced by the second. */
    CHECK_OK(obj_index_create(w, "run", J("{\"name\":\"u\",\"kind\":\"unique\",\"fields\":[\"u\"]}")));
    CHECK_STATUS(obj_doc_insert(w, "run", J("{\"u\":1}"), 0, &id), OBJ_CONSTRAINT);
    CHECK_OK(obj_doc_insert(w, "run", J("{\"u\":3,\"fresh_name\":1}"), 0, &id));
    CHECK(id == 3);
    /* Interleaved collections and key-value writes. */
    CHECK_OK(obj_doc_insert(w, "run2", J("{\"u\":1}"), 0, &id));
    CHECK(id == 1);
    CHECK_OK(obj_kv_put(w, "kv", J("k"), J("v")));
    CHECK_STATUS(obj_doc_upsert(w, "run", 9, J("{\"u\":2}"), 0, &created), OBJ_CONSTRAINT);
    CHECK_OK(obj_doc_upsert(w, "run", 9, J("{\"u\":9}"), 0, &created));
    CHECK(created);
    CHECK_OK(obj_doc_delete(w, "run", 9, NULL));
    CHECK_OK(obj_doc_insert(w, "run", J("{\"u\":9}"), 0, &id)); /* its value is free again */
    CHECK(id == 10);
    /* Dropping the index, then the collection, between writes. */
    CHECK_OK(obj_index_drop(w, "run", "u"));
    CHECK_OK(obj_doc_insert(w, "run", J("{\"u\":1}"), 0, &id));
    CHECK_OK(obj_collection_drop(w, "run", NULL));
    CHECK_OK(obj_doc_insert(w, "run", J("{\"u\":1}"), 0, &id));
    CHECK(id == 1);
    CHECK_OK(obj_collection_count(w, "run", &cnt));
    CHECK(cnt == 1);
    /* Kind changes through drop + create. */
    CHECK_OK(obj_collection_drop(w, "run", NULL));
    CHECK_OK(obj_raw_insert(w, "run", J("raw now"), &id));
    CHECK_STATUS(obj_doc_insert(w, "run", J("{}"), 0, &id), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_doc_replace(w, "run", 1, J("{}"), 0), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_raw_upsert(w, "run", 1, J("RAW"), &created));
    CHECK(!created);
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    /* A new transaction starts from the committed state. */
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_raw_insert(w, "run", J("x"), &id));
    CHECK(id == 2);
    CHECK_OK(obj_collection_info(w, "run2", &out));
    CHECK(has(out, "\"next_id\":2"));
    obj_bytes_free(&out);
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_db_integrity_check(db, NULL));
}

/* A document's "$" keys travel as "$$" (docs JSON); a map value in a
 * filter reads "$$" keys the same way, so a value read back from
 * obj_doc_get matches as it is; {"$map": ...} keeps keys literal, and a
 * path names keys as they are. */
static void test_dollar_keys_in_queries(obj_db *db) {
    obj_txn *w = NULL, *r = NULL;
    uint64_t id = 0, cnt = 0;
    obj_bytes out = {0};
    bool found = false;
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_doc_insert(w, "dollar", J("{\"t\":{\"$$x\":1},\"$$k\":\"v\"}"), 0, &id));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_doc_get(r, "dollar", id, &out, NULL, &found));
    CHECK(found);
    check_eq_free(&out, "{\"t\":{\"$$x\":1},\"$$k\":\"v\"}");
    const char *matching[] = {
        "{\"collection\":\"dollar\",\"filter\":{\"eq\":[\"t\",{\"$$x\":1}]}}",
        "{\"collection\":\"dollar\",\"filter\":{\"eq\":[\"t\",{\"$map\":{\"$x\":1}}]}}",
        "{\"collection\":\"dollar\",\"filter\":{\"eq\":[\"t\",{\"$x\":1}]}}",
        "{\"collection\":\"dollar\",\"filter\":{\"eq\":[\"$k\",\"v\"]}}",
        "{\"collection\":\"dollar\",\"filter\":{\"exists\":\"t.$x\"}}",
    };
    for (size_t i = 0; i < sizeof matching / sizeof *matching; i++) {
        CHECK_OK(obj_query_count(r, J(matching[i]), &cnt));
        CHECK(cnt == 1);
    }
    const char *not_matching[] = {
        "{\"collection\":\"dollar\",\"filter\":{\"eq\":[\"t\",{\"$map\":{\"$$x\":1}}]}}",
        "{\"collection\":\"dollar\",\"filter\":{\"eq\":[\"$$k\",\"v\"]}}",
    };
    for (size_t i = 0; i < sizeof not_matching / sizeof *not_matching; i++) {
        CHECK_OK(obj_query_count(r, J(not_matching[i]), &cnt));
        CHECK(cnt == 0);
    }
    CHECK_ERR(obj_query_count(r, J("{\"collection\":\"dollar\",\"filter\":{\"eq\":[\"t\",{\"$$x\":1,\"$x\":2}]}}"), &cnt),
              OBJ_INVALID_ARGUMENT, "twice");
    CHECK_OK(obj_txn_free(r));
}

/* obj_json_may_hold_null: a null value is always seen, the word elsewhere
 * mostly not; bad arguments are errors. */
static void test_json_may_hold_null(void) {
    bool out = false;
    const char *yes[] = {"null", "[1,null]", "{\"a\" : null }", "[\n null\n]"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        out = false;
        CHECK_OK(obj_json_may_hold_null((const uint8_t *)yes[i], strlen(yes[i]), &out));
        CHECK(out);
    }
    const char *no[] = {"", "[1,2]", "{\"nullable\":true}", "[\"null\"]", "{\"a\":\"a null b\"}"};
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        out = true;
        CHECK_OK(obj_json_may_hold_null((const uint8_t *)no[i], strlen(no[i]), &out));
        CHECK(!out);
    }
    out = true;
    CHECK_OK(obj_json_may_hold_null(NULL, 0, &out));
    CHECK(!out);
    CHECK_ERR(obj_json_may_hold_null(NULL, 4, &out), OBJ_INVALID_ARGUMENT, "json is NULL");
    CHECK_ERR(obj_json_may_hold_null((const uint8_t *)"null", 4, NULL), OBJ_INVALID_ARGUMENT, "out");
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    snprintf(path, sizeof path, "%s/c-docs-%d.obj", dir, (int)getpid());
    snprintf(wal, sizeof wal, "%s-wal", path);
    unlink(path);
    unlink(wal);
    obj_db *db = open_db();
    test_collections(db);
    test_documents(db);
    test_raw_and_large(db);
    test_indexes(db);
    test_queries(db);
    test_dollar_keys_in_queries(db);
    test_kv_scans(db);
    test_dump_and_stat(db);
    test_write_runs(db);
    test_json_may_hold_null();
    CHECK_OK(obj_db_free(db));
    /* Everything survives a reopen. */
    db = open_db();
    obj_txn *r = NULL;
    uint64_t n = 0;
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_collection_count(r, "acct", &n));
    CHECK(n == 3);
    CHECK_OK(obj_txn_free(r));
    CHECK_OK(obj_db_free(db));
    unlink(path);
    unlink(wal);
    printf("c docs: %d passed, 0 failed\n", checks_run);
    return 0;
}
