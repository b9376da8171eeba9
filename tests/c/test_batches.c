/* The batch entry points added in session 42.
 *
 * obj_doc_insert_lines: one document per line of a text, each line checked
 * to hold exactly one JSON document (a document over two lines, or two on
 * one line, would otherwise be read as other documents), all or nothing,
 * errors naming the line; an empty batch takes NULL out_ids.
 *
 * obj_raw_insert_many: raw documents laid end to end with their lengths,
 * inserted in one call with consecutive ids; all or nothing (a batch that
 * runs out of ids leaves no item and the next id as it was). */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include "check.h"

static obj_status insert_lines(obj_txn *w, const char *text, uint64_t *ids, size_t cap, size_t *n) {
    return obj_doc_insert_lines(w, "c", (const uint8_t *)text, strlen(text), 0, ids, cap, n);
}

static uint64_t count_docs(obj_txn *t) {
    uint64_t n = 0;
    CHECK_OK(obj_query_count(t, (const uint8_t *)"{\"collection\":\"c\"}", 18, &n));
    return n;
}

/* Runs `checks` on a fresh database <dir>/<name>, then closes and removes it. */
static void with_fresh_db(const char *dir, const char *name, void (*checks)(obj_db *db)) {
    char p[520];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    remove_db(p);
    obj_db *db = NULL;
    CHECK_OK(obj_db_open(p, NULL, &db));
    checks(db);
    CHECK_OK(obj_db_close(db));
    obj_db_free(db);
    remove_db(p);
}

static void insert_lines_checks(obj_db *db) {
    obj_txn *w = NULL;
    CHECK_OK(obj_txn_begin_write(db, &w));

    uint64_t ids[8] = {0};
    size_t n = 99;
    /* Lines end with \n or \r\n; the last may have none; brackets and
     * commas inside strings are text. */
    CHECK_OK(insert_lines(w, "{\"a\":1}\r\n{\"b\":[{\"c\":\"}, {\"}]}\n  {\"s\":\"x\\\"y,\"}", ids, 8, &n));
    CHECK(n == 3 && ids[0] == 1 && ids[2] == 3);
    obj_bytes doc = {0};
    bool found = false;
    CHECK_OK(obj_doc_get(w, "c", 2, &doc, NULL, &found));
    CHECK(found && doc.len == strlen("{\"b\":[{\"c\":\"}, {\"}]}") &&
          memcmp(doc.data, "{\"b\":[{\"c\":\"}, {\"}]}", doc.len) == 0);
    obj_bytes_free(&doc);

    /* A document that goes on over a line break, or two on one line:
     * refused, naming the line, nothing written. (Joined as an array,
     * each pair here would make one document from two lines.) */
    n = 99;
    CHECK_ERR(insert_lines(w, "{\"n\":1}\n{\"text\":\"hello\nworld\"}\n{\"n\":2}\n", ids, 8, &n),
              OBJ_INVALID_ARGUMENT, "line 2: a string runs on past the end of the line");
    CHECK(n == 99);
    CHECK_ERR(insert_lines(w, "{\"n\":1}\n{\"x\":[1,\n2]}\n", ids, 8, &n), OBJ_INVALID_ARGUMENT,
              "line 2: a bracket is still open");
    CHECK_ERR(insert_lines(w, "{\"n\":1},{\"n\":2}\n{\"n\":3}\n", ids, 8, &n), OBJ_INVALID_ARGUMENT,
              "line 1: the line holds more than one JSON value");
    CHECK_ERR(insert_lines(w, "{\"n\":1}\n\n{\"n\":3}\n", ids, 8, &n), OBJ_INVALID_ARGUMENT,
              "line 2: the line is empty");
    /* Any other bad document names its line too. */
    CHECK_ERR(insert_lines(w, "{\"n\":1}\n{\"n\":1}\n[1, 2]\n", ids, 8, &n), OBJ_INVALID_ARGUMENT, "line 3:");
    CHECK_ERR(insert_lines(w, "{\"n\":1}\n{\"n\":tru}\n", ids, 8, &n), OBJ_INVALID_ARGUMENT, "line 2:");
    /* The first bad line, whatever is wrong with it (line 2's syntax
     * before line 3's open bracket). */
    CHECK_ERR(insert_lines(w, "{\"n\":1}\n{\"n\":tru}\n{\"x\":[1,\n2]}\n", ids, 8, &n), OBJ_INVALID_ARGUMENT,
              "line 2:");
    CHECK_ERR(insert_lines(w, "{\"a\":1}\n{\"a\":2}\n", ids, 1, &n), OBJ_INVALID_ARGUMENT, "out_cap is 1");
    CHECK(n == 99 && count_docs(w) == 3);

    /* Nothing to insert: OK with no ids, out_ids may be NULL (also for
     * obj_doc_insert_many's empty array). */
    CHECK_OK(obj_doc_insert_lines(w, "c", (const uint8_t *)"", 0, 0, NULL, 0, &n));
    CHECK(n == 0);
    n = 99;
    CHECK_OK(obj_doc_insert_lines(w, "c", NULL, 0, 0, NULL, 0, &n));
    CHECK(n == 0);
    n = 99;
    CHECK_OK(obj_doc_insert_many(w, "c", (const uint8_t *)"[]", 2, 0, NULL, 0, &n));
    CHECK(n == 0);
    CHECK_ERR(obj_doc_insert_lines(w, "c", (const uint8_t *)"{}", 2, 0, NULL, 0, &n), OBJ_INVALID_ARGUMENT,
              "out_cap is 0");
    CHECK_ERR(obj_doc_insert_lines(w, "c", NULL, 2, 0, ids, 8, &n), OBJ_INVALID_ARGUMENT, "text");
    CHECK_ERR(obj_doc_insert_lines(w, "c", (const uint8_t *)"{}", 2, 0, ids, 8, NULL), OBJ_INVALID_ARGUMENT,
              "out_count");

    CHECK_OK(obj_txn_commit(w));
    obj_txn_free(w);
    obj_txn *r = NULL;
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK(count_docs(r) == 3);
    CHECK_STATUS(insert_lines(r, "{}", ids, 8, &n), OBJ_INVALID_ARGUMENT);
    obj_txn_free(r);
}

static void raw_insert_many_checks(obj_db *db) {
    obj_txn *w = NULL;
    CHECK_OK(obj_txn_begin_write(db, &w));

    const char *data = "abcdef";
    size_t lens[3] = {1, 0, 5}; /* "a", "", "bcdef" */
    uint64_t ids[3] = {0};
    CHECK_OK(obj_raw_insert_many(w, "blobs", (const uint8_t *)data, lens, 3, ids));
    CHECK(ids[0] == 1 && ids[1] == 2 && ids[2] == 3);
    obj_bytes got = {0};
    bool found = false;
    CHECK_OK(obj_raw_get(w, "blobs", 3, &got, &found));
    CHECK(found && got.len == 5 && memcmp(got.data, "bcdef", 5) == 0);
    obj_bytes_free(&got);
    CHECK_OK(obj_raw_get(w, "blobs", 2, &got, &found));
    CHECK(found && got.len == 0);

    /* Nothing to insert: OK, NULLs allowed. */
    CHECK_OK(obj_raw_insert_many(w, "blobs", NULL, NULL, 0, NULL));
    /* Bad arguments, nothing written. */
    CHECK_ERR(obj_raw_insert_many(w, "blobs", (const uint8_t *)data, NULL, 2, ids), OBJ_INVALID_ARGUMENT, "lens");
    CHECK_ERR(obj_raw_insert_many(w, "blobs", (const uint8_t *)data, lens, 3, NULL), OBJ_INVALID_ARGUMENT,
              "out_ids");
    size_t huge[2] = {SIZE_MAX, 2};
    CHECK_ERR(obj_raw_insert_many(w, "blobs", (const uint8_t *)data, huge, 2, ids), OBJ_INVALID_ARGUMENT,
              "add up");
    CHECK_OK(obj_doc_insert(w, "docs", (const uint8_t *)"{}", 2, 0, ids));
    CHECK_ERR(obj_raw_insert_many(w, "docs", (const uint8_t *)data, lens, 3, ids), OBJ_INVALID_ARGUMENT, "docs");

    /* Two items where one id is left: neither stays. */
    CHECK_OK(obj_raw_upsert(w, "blobs", UINT64_MAX - 2, (const uint8_t *)"z", 1, NULL));
    CHECK_ERR(obj_raw_insert_many(w, "blobs", (const uint8_t *)data, lens, 2, ids), OBJ_INVALID_ARGUMENT,
              "exhausted");
    uint64_t one = 0;
    CHECK_OK(obj_raw_insert(w, "blobs", (const uint8_t *)"y", 1, &one));
    CHECK(one == UINT64_MAX - 1); /* the next id was restored */
    CHECK_OK(obj_txn_commit(w));
    obj_txn_free(w);

    obj_txn *r = NULL;
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_STATUS(obj_raw_insert_many(r, "blobs", (const uint8_t *)data, lens, 3, ids), OBJ_INVALID_ARGUMENT);
    obj_txn_free(r);
    CHECK_OK(obj_db_integrity_check(db, NULL));
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    with_fresh_db(dir, "insert-lines.obj", insert_lines_checks);
    with_fresh_db(dir, "raw-batch.obj", raw_insert_many_checks);
    printf("test_batches: %d checks passed\n", checks_run);
    return 0;
}
