/* obj_raw_insert_many: raw documents laid end to end with their lengths,
 * inserted in one call with consecutive ids; all or nothing (a batch that
 * runs out of ids leaves no item and the next id as it was). */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include "check.h"

int main(int argc, char **argv) {
    char p[520];
    snprintf(p, sizeof p, "%s/raw-batch.obj", argc > 1 ? argv[1] : ".");
    remove_db(p);
    obj_db *db = NULL;
    CHECK_OK(obj_db_open(p, NULL, &db));
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
    CHECK_OK(obj_db_close(db));
    obj_db_free(db);
    remove_db(p);
    printf("test_raw_batch: %d checks passed\n", checks_run);
    return 0;
}
