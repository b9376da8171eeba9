#define _GNU_SOURCE
/* Review 31: a thread whose first failing call came from a pthread key
 * destructor (after its function returned) leaked that call's message:
 * the Rust thread-local holding it was first touched after the thread's
 * thread-locals had been destroyed, so it never was. The message now
 * lives in a pthread key of the library, whose destructor runs in the
 * next round. Under valgrind (make test-c), a leak fails this test; the
 * message is also no longer cut to 511 bytes. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"

static char dir[400];
static obj_db *db;
static pthread_key_t key;

enum { THREADS = 20 };

struct seen {
    obj_status status;
    size_t len;
    bool names_it;
};
static struct seen seen[THREADS];

/* A collection name too long to be valid: the message quotes it, and
 * runs past the old 511-byte cut of late messages. */
static char long_name[501];

static void destructor(void *value) {
    struct seen *s = value;
    obj_txn *r = NULL;
    if (obj_txn_begin_read(db, &r) != OBJ_OK) return;
    obj_bytes info = {0};
    s->status = obj_collection_info(r, long_name, &info);
    const char *m = obj_last_error();
    s->len = strlen(m);
    s->names_it = strstr(m, long_name) != NULL;
    obj_txn_free(r);
}

static void *thread_main(void *arg) {
    /* Only successful calls while the thread runs. */
    obj_txn *r = NULL;
    if (obj_txn_begin_read(db, &r) == OBJ_OK) obj_txn_free(r);
    pthread_setspecific(key, arg);
    return NULL;
}

int main(int argc, char **argv) {
    snprintf(dir, sizeof dir, "%s", argc > 1 ? argv[1] : ".");
    char p[520];
    snprintf(p, sizeof p, "%s/review31-tls.obj", dir);
    remove_db(p);
    CHECK_OK(obj_db_open(p, NULL, &db));
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    CHECK(pthread_key_create(&key, destructor) == 0);
    for (int i = 0; i < THREADS; i++) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, thread_main, &seen[i]) == 0);
        CHECK(pthread_join(t, NULL) == 0);
        CHECK(seen[i].status == OBJ_INVALID_ARGUMENT); /* a name past the limit, quoted */
        CHECK(seen[i].len > 511 && seen[i].names_it);
    }
    /* This thread's own message is untouched by theirs. */
    CHECK(strcmp(obj_last_error(), "") == 0);
    CHECK_ERR(obj_txn_free((obj_txn *)db), OBJ_INVALID_ARGUMENT, "not a valid transaction handle");
    pthread_key_delete(key);
    CHECK_OK(obj_db_free(db));
    remove_db(p);
    printf("c review31: %d passed, 0 failed\n", checks_run);
    return 0;
}
