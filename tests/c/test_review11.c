#define _GNU_SOURCE
/* Review 11: what a new C user found with only obj.h in hand.
 *
 * - obj_db_rekey on a handle inherited through fork() returns the
 *   documented fork error (OBJ_INVALID_ARGUMENT naming fork()), as every
 *   other database-level call does, and leaves the parent's file alone.
 * - A write refused for its id (obj_doc_upsert / obj_raw_upsert at
 *   UINT64_MAX) writes nothing: no new collection appears, and a cursor of
 *   the transaction keeps reading. */
#include <stddef.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"

#define U8(s) ((const uint8_t *)(s))
#define JSON(s) U8(s), strlen(s)

static char dir[400];

static void test_rekey_in_fork_child(void) {
    char p[520];
    snprintf(p, sizeof p, "%s/c-review11-fork-%d.obj", dir, (int)getpid());
    remove_db(p);
    obj_db *db = NULL;
    uint64_t id = 0;
    CHECK_OK(obj_db_open(p, NULL, &db));
    CHECK_OK(obj_db_doc_insert(db, "c", JSON("{\"a\":1}"), 0, &id));
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        uint8_t key[32] = {7};
        CHECK_ERR(obj_db_rekey(db, key, NULL), OBJ_INVALID_ARGUMENT, "fork()");
        CHECK_ERR(obj_db_rekey(db, NULL, NULL), OBJ_INVALID_ARGUMENT, "fork()");
        CHECK_OK(obj_db_free(db));
        fflush(NULL);
        _exit(0);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The parent's handle and file are as they were: still plain. */
    obj_bytes b = {0};
    bool found = false;
    CHECK_OK(obj_db_doc_get(db, "c", id, &b, NULL, &found));
    CHECK(found);
    obj_bytes_free(&b);
    CHECK_OK(obj_db_integrity_check(db, NULL));
    CHECK_OK(obj_db_free(db));
    CHECK_OK(obj_db_open(p, NULL, &db));
    CHECK_OK(obj_db_doc_get(db, "c", id, &b, NULL, &found));
    CHECK(found);
    obj_bytes_free(&b);
    CHECK_OK(obj_db_free(db));
    remove_db(p);
}

static int bytes_are(const obj_bytes *b, const char *want) {
    return b->len == strlen(want) && memcmp(b->data, want, b->len) == 0;
}

static void test_refused_upsert_leaves_nothing(void) {
    char p[520];
    snprintf(p, sizeof p, "%s/c-review11-upsert-%d.obj", dir, (int)getpid());
    remove_db(p);
    obj_db *db = NULL;
    obj_txn *w = NULL;
    obj_cursor *cur = NULL;
    obj_bytes b = {0};
    uint64_t id = 0;
    bool created = true, done = true;
    CHECK_OK(obj_db_open(p, NULL, &db));
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_doc_insert(w, "kept", JSON("{\"a\":1}"), 0, &id));
    CHECK_OK(obj_doc_insert(w, "kept", JSON("{\"a\":2}"), 0, &id));
    CHECK_OK(obj_query(w, JSON("{\"collection\":\"kept\"}"), &cur));
    CHECK_OK(obj_cursor_next(cur, &id, &b, NULL, &done));
    CHECK(!done && id == 1);
    obj_bytes_free(&b);

    CHECK_ERR(obj_doc_upsert(w, "fresh", UINT64_MAX, JSON("{\"a\":1}"), 0, &created), OBJ_INVALID_ARGUMENT,
              "id space");
    CHECK(created); /* out-parameters are written only on OBJ_OK */
    CHECK_ERR(obj_raw_upsert(w, "fresh_raw", UINT64_MAX, JSON("x"), &created), OBJ_INVALID_ARGUMENT, "id space");
    CHECK_ERR(obj_doc_upsert(w, "kept", UINT64_MAX, JSON("{\"a\":3}"), 0, NULL), OBJ_INVALID_ARGUMENT, "id space");

    /* Nothing was written: the cursor goes on, and no collection appeared. */
    CHECK_OK(obj_cursor_next(cur, &id, &b, NULL, &done));
    CHECK(!done && id == 2);
    obj_bytes_free(&b);
    CHECK_OK(obj_cursor_free(cur));
    CHECK_OK(obj_collection_list(w, &b));
    CHECK(bytes_are(&b, "[\"kept\"]"));
    obj_bytes_free(&b);
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));

    /* The one-call upsert refuses it too, with nothing committed. */
    CHECK_ERR(obj_db_doc_upsert(db, "fresh", UINT64_MAX, JSON("{\"a\":1}"), 0, NULL), OBJ_INVALID_ARGUMENT,
              "id space");
    obj_txn *r = NULL;
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_collection_list(r, &b));
    CHECK(bytes_are(&b, "[\"kept\"]"));
    obj_bytes_free(&b);
    CHECK_OK(obj_txn_free(r));

    /* The largest id a document may have still works. */
    CHECK_OK(obj_db_doc_upsert(db, "kept", UINT64_MAX - 1, JSON("{\"a\":4}"), 0, &created));
    CHECK(created);
    CHECK_OK(obj_db_integrity_check(db, NULL));
    CHECK_OK(obj_db_free(db));
    remove_db(p);
}

static void test_raise_next_id(void) {
    char p[520];
    snprintf(p, sizeof p, "%s/c-review11-nextid-%d.obj", dir, (int)getpid());
    remove_db(p);
    obj_db *db = NULL;
    obj_txn *w = NULL, *r = NULL;
    uint64_t id = 0;
    CHECK_OK(obj_db_open(p, NULL, &db));
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_doc_insert(w, "docs", JSON("{\"a\":1}"), 0, &id));
    CHECK(id == 1);
    CHECK_OK(obj_collection_raise_next_id(w, "docs", 100));
    CHECK_OK(obj_collection_raise_next_id(w, "docs", 50)); /* lower: nothing changes */
    CHECK_OK(obj_doc_insert(w, "docs", JSON("{\"a\":2}"), 0, &id));
    CHECK(id == 100);
    CHECK_OK(obj_collection_create(w, "blobs", OBJ_COLLECTION_RAW));
    CHECK_OK(obj_collection_raise_next_id(w, "blobs", 7));
    CHECK_OK(obj_raw_insert(w, "blobs", U8("x"), 1, &id));
    CHECK(id == 7);
    CHECK_ERR(obj_collection_raise_next_id(w, "nothing", 5), OBJ_NOT_FOUND, "nothing");
    CHECK_ERR(obj_collection_raise_next_id(w, NULL, 5), OBJ_INVALID_ARGUMENT, "collection name");
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_ERR(obj_collection_raise_next_id(r, "docs", 500), OBJ_INVALID_ARGUMENT, "read");
    CHECK_OK(obj_txn_free(r));
    /* Kept by the commit: the next insert after a reopen continues above 100. */
    CHECK_OK(obj_db_free(db));
    db = NULL;
    CHECK_OK(obj_db_open(p, NULL, &db));
    CHECK_OK(obj_db_doc_insert(db, "docs", JSON("{\"a\":3}"), 0, &id));
    CHECK(id == 101);
    CHECK_OK(obj_db_free(db));
    remove_db(p);
}

static void test_reopen_beside_a_forked_child(void) {
    char p[520];
    snprintf(p, sizeof p, "%s/c-review11-forkopen-%d.obj", dir, (int)getpid());
    remove_db(p);
    obj_options o;
    CHECK_OK(obj_options_init(&o));
    o.busy_timeout_ms = 300;
    obj_db *db = NULL;
    uint64_t id = 0;
    CHECK_OK(obj_db_open(p, &o, &db));
    CHECK_OK(obj_db_doc_insert(db, "c", JSON("{\"a\":1}"), 0, &id));
    int go[2];
    CHECK(pipe(go) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) { /* a worker that never touches the database */
        char c;
        close(go[1]);
        while (read(go[0], &c, 1) < 0) {
        }
        _exit(0);
    }
    close(go[0]);
    CHECK_OK(obj_db_free(db)); /* the last handle: -wal and -shm go */
    db = NULL;
    CHECK_OK(obj_db_open(p, &o, &db)); /* the first opener again */
    CHECK_OK(obj_db_doc_insert(db, "c", JSON("{\"a\":2}"), 0, &id));
    CHECK(id == 2);
    CHECK_OK(obj_db_free(db));
    CHECK(write(go[1], "x", 1) == 1);
    close(go[1]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    remove_db(p);
}

int main(int argc, char **argv) {
    snprintf(dir, sizeof dir, "%s", argc > 1 ? argv[1] : "/tmp");
    test_rekey_in_fork_child();
    test_refused_upsert_leaves_nothing();
    test_raise_next_id();
    test_reopen_beside_a_forked_child();
    printf("c review11: %d checks passed, 0 failed\n", checks_run);
    return 0;
}
