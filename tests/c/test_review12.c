#define _GNU_SOURCE
/* Review 12: lifetimes and threads across the ABI, from a C programmer's
 * side: what a program gets wrong (closing or freeing the database while
 * its transactions and cursors live on, freeing children in any order,
 * using a transaction from other threads, racing commit with close), and
 * the per-thread error message and returned buffers. Each must answer
 * with a status, never a crash, a hang or a leak (valgrind runs this). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "check.h"

#define U8(s) ((const uint8_t *)(s))
#define JSON(s) U8(s), strlen(s)

static char dir[400];

static void db_path(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/c-review12-%s-%d.obj", dir, name, (int)getpid());
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

static int wal_exists(const char *p) {
    char side[600];
    snprintf(side, sizeof side, "%s-wal", p);
    return exists(side);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static int bytes_are(const obj_bytes *b, const char *want) {
    return b->len == strlen(want) && memcmp(b->data, want, b->len) == 0;
}

/* A database with `n` documents in "docs" and `n` keys in "kv". */
static obj_db *make_db(const char *p, uint64_t n, const obj_options *o) {
    remove_db(p);
    obj_db *db = NULL;
    obj_txn *w = NULL;
    CHECK_OK(obj_db_open(p, o, &db));
    CHECK_OK(obj_txn_begin_write(db, &w));
    for (uint64_t i = 1; i <= n; i++) {
        char doc[64], key[32];
        uint64_t id = 0;
        snprintf(doc, sizeof doc, "{\"n\":%llu}", (unsigned long long)i);
        CHECK_OK(obj_doc_insert(w, "docs", JSON(doc), 0, &id));
        CHECK(id == i);
        snprintf(key, sizeof key, "k%05llu", (unsigned long long)i);
        CHECK_OK(obj_kv_put(w, "kv", JSON(key), U8("v"), 1));
    }
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    return db;
}

/* Reopens `p`, checks that "docs" holds `want` documents and that the file
 * is sound, and closes it. */
static void check_reopened(const char *p, uint64_t want) {
    obj_db *db = NULL;
    CHECK_OK(obj_db_open(p, NULL, &db));
    CHECK(count_of(db, "docs") == want);
    CHECK_OK(obj_db_integrity_check(db, NULL));
    CHECK_OK(obj_db_free(db));
}

/* Drains a query cursor; returns how many documents it gave. */
static uint64_t drain(obj_cursor *c) {
    uint64_t n = 0, id = 0;
    obj_bytes b = {0};
    bool done = false;
    for (;;) {
        CHECK_OK(obj_cursor_next(c, &id, &b, NULL, &done));
        if (done) break;
        obj_bytes_free(&b);
        n++;
    }
    return n;
}

/* --- 1. Close, then free, the database under live children (one thread) --- */

static void test_db_freed_under_children(void) {
    char p[520];
    db_path(p, sizeof p, "children");
    obj_db *db = make_db(p, 50, NULL);
    obj_txn *r = NULL, *w = NULL;
    obj_cursor *rq = NULL, *rk = NULL, *rd = NULL, *wq = NULL;
    obj_bytes k = {0}, v = {0}, b = {0};
    uint64_t id = 0, n = 0;
    bool done = true, found = false;
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_doc_insert(w, "docs", JSON("{\"n\":51}"), 0, &id));
    CHECK(id == 51);
    CHECK_OK(obj_query(r, JSON("{\"collection\":\"docs\"}"), &rq));
    CHECK_OK(obj_kv_scan(r, "kv", NULL, 0, NULL, 0, NULL, 0, false, &rk));
    CHECK_OK(obj_collection_dump(r, "docs", &rd));
    CHECK_OK(obj_query(w, JSON("{\"collection\":\"docs\"}"), &wq));
    /* One step on each before the close. */
    CHECK_OK(obj_cursor_next(rq, &id, &b, NULL, &done));
    CHECK(!done && id == 1);
    obj_bytes_free(&b);

    CHECK_OK(obj_db_close(db));
    /* Everything begun before the close keeps working (obj.h: "Transactions
     * still open keep working until freed"), cursors included. */
    CHECK_OK(obj_kv_cursor_next(rk, &k, &v, &done));
    CHECK(!done && bytes_are(&k, "k00001") && bytes_are(&v, "v"));
    obj_bytes_free(&k);
    obj_bytes_free(&v);
    CHECK_OK(obj_dump_cursor_next(rd, &id, NULL, &b, &done));
    CHECK(!done && id == 1 && b.len > 0);
    obj_bytes_free(&b);
    CHECK_OK(obj_cursor_next(wq, &id, &b, NULL, &done));
    CHECK(!done && id == 1);
    obj_bytes_free(&b);
    /* The database handle itself is closed. */
    obj_txn *late = (obj_txn *)&late; /* a sentinel: out-parameters are written only on OBJ_OK */
    CHECK_ERR(obj_txn_begin_read(db, &late), OBJ_CLOSED, "closed");
    CHECK(late == (obj_txn *)&late);
    CHECK_ERR(obj_db_doc_get(db, "docs", 1, &b, NULL, &found), OBJ_CLOSED, "closed");

    /* Now the handle goes altogether, children still open. */
    CHECK_OK(obj_db_free(db));
    db = NULL;
    CHECK(drain(rq) == 49);
    CHECK_OK(obj_collection_count(r, "docs", &n));
    CHECK(n == 50); /* its snapshot */
    CHECK_OK(obj_doc_get(w, "docs", 51, &b, NULL, &found));
    CHECK(found && bytes_are(&b, "{\"n\":51}"));
    obj_bytes_free(&b);
    /* A write after the free: the write transaction's cursor ends as always. */
    CHECK_OK(obj_doc_insert(w, "docs", JSON("{\"n\":52}"), 0, &id));
    CHECK_ERR(obj_cursor_next(wq, &id, &b, NULL, &done), OBJ_INVALID_ARGUMENT, "changed under the cursor");
    /* The write transaction commits after its database handle was freed. */
    CHECK_OK(obj_txn_commit(w));
    CHECK(wal_exists(p)); /* the read snapshot still holds the file open */
    /* Children freed in the "wrong" order: the transactions first. */
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_txn_free(r));
    CHECK_ERR(obj_kv_cursor_next(rk, &k, &v, &done), OBJ_INVALID_ARGUMENT, "freed");
    CHECK_ERR(obj_dump_cursor_next(rd, &id, NULL, &b, &done), OBJ_INVALID_ARGUMENT, "freed");
    CHECK_OK(obj_cursor_free(rk));
    CHECK_OK(obj_cursor_free(wq));
    CHECK_OK(obj_cursor_free(rq));
    CHECK_OK(obj_cursor_free(rd));
    /* The last of them folded the WAL: the close finished. */
    CHECK(!wal_exists(p));
    check_reopened(p, 52);
    remove_db(p);
}

/* obj_db_close_no_checkpoint under a live write transaction, then reopen
 * while that transaction (of the closed handle) still runs in this process. */
static void test_reopen_beside_old_children(void) {
    char p[520];
    db_path(p, sizeof p, "reopen");
    obj_options o;
    CHECK_OK(obj_options_init(&o));
    o.busy_timeout_ms = 100;
    obj_db *db = make_db(p, 3, &o);
    obj_txn *w = NULL, *w2 = NULL;
    uint64_t id = 0;
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_doc_insert(w, "docs", JSON("{\"n\":4}"), 0, &id));
    CHECK_OK(obj_db_close_no_checkpoint(db));
    CHECK_OK(obj_db_free(db));
    /* A new handle on the same file: the old write transaction still holds
     * the writer, so a new one is busy, reads are not. */
    obj_db *db2 = NULL;
    CHECK_OK(obj_db_open(p, &o, &db2));
    CHECK(count_of(db2, "docs") == 3);
    CHECK_ERR(obj_txn_begin_write(db2, &w2), OBJ_BUSY, "write transaction");
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK(count_of(db2, "docs") == 4);
    CHECK_OK(obj_txn_begin_write(db2, &w2));
    CHECK_OK(obj_doc_insert(w2, "docs", JSON("{\"n\":5}"), 0, &id));
    CHECK(id == 5);
    CHECK_OK(obj_txn_commit(w2));
    CHECK_OK(obj_txn_free(w2));
    CHECK_OK(obj_db_free(db2));
    check_reopened(p, 5);
    remove_db(p);
}

/* --- 2. Close from another thread while children work --- */

struct worker {
    obj_db *db;
    int writer;
    volatile int *go;
    uint64_t ops;
    uint64_t committed; /* documents whose commit returned OBJ_OK */
    int saw_closed;
};

static void *closing_worker(void *arg) {
    struct worker *wk = arg;
    while (!*wk->go) sched_yield();
    for (;;) {
        obj_txn *t = NULL;
        obj_status s = wk->writer ? obj_txn_begin_write(wk->db, &t) : obj_txn_begin_read(wk->db, &t);
        if (s == OBJ_CLOSED) {
            wk->saw_closed = 1;
            break;
        }
        CHECK_OK(s);
        if (wk->writer) {
            uint64_t id = 0;
            CHECK_OK(obj_doc_insert(t, "docs", JSON("{\"w\":1}"), 0, &id));
            CHECK_OK(obj_kv_put(t, "kv", U8("last"), 4, U8(&id), sizeof id));
            CHECK_OK(obj_txn_commit(t));
            wk->committed++;
        } else {
            obj_cursor *c = NULL;
            CHECK_OK(obj_query(t, JSON("{\"collection\":\"docs\",\"limit\":20}"), &c));
            CHECK(drain(c) == 20);
            /* The cursor freed after its transaction, half the time. */
            if (wk->ops % 2) CHECK_OK(obj_cursor_free(c));
            CHECK_OK(obj_txn_free(t));
            t = NULL;
            if (!(wk->ops % 2)) CHECK_OK(obj_cursor_free(c));
        }
        if (t) CHECK_OK(obj_txn_free(t));
        wk->ops++;
    }
    return NULL;
}

static void test_close_under_other_threads(void) {
    char p[520];
    db_path(p, sizeof p, "mtclose");
    obj_options o;
    CHECK_OK(obj_options_init(&o));
    o.sync_mode = 2;
    obj_db *db = make_db(p, 30, &o);
    enum { N = 4 };
    volatile int go = 0;
    struct worker wk[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        wk[i] = (struct worker){.db = db, .writer = i < 2, .go = &go};
        CHECK(pthread_create(&t[i], NULL, closing_worker, &wk[i]) == 0);
    }
    go = 1;
    /* Let them run a little, then close under them. */
    for (int spins = 0; spins < 2000; spins++) {
        uint64_t total = 0;
        for (int i = 0; i < N; i++) total += wk[i].ops;
        if (total >= 40) break;
        usleep(1000);
    }
    CHECK_OK(obj_db_close(db));
    uint64_t committed = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK(wk[i].saw_closed);
        committed += wk[i].committed;
    }
    CHECK_OK(obj_db_free(db));
    CHECK(!wal_exists(p));
    check_reopened(p, 30 + committed);
    remove_db(p);
}

/* --- 3. Commit or rollback racing with close --- */

#ifndef RACE_ROUNDS
#define RACE_ROUNDS 16 /* more for a stress run: cc -DRACE_ROUNDS=2000 */
#endif

struct racer {
    obj_txn *txn;
    int rollback;
    volatile int *go;
    obj_status status;
};

static void *race_end(void *arg) {
    struct racer *r = arg;
    while (!*r->go) sched_yield();
    r->status = r->rollback ? obj_txn_rollback(r->txn) : obj_txn_commit(r->txn);
    return NULL;
}

static void test_commit_races_close(void) {
    char p[520];
    db_path(p, sizeof p, "race");
    obj_options o;
    CHECK_OK(obj_options_init(&o));
    o.sync_mode = 2;
    obj_db *db = make_db(p, 0, &o);
    CHECK_OK(obj_db_free(db));
    uint64_t want = 0;
    for (int round = 0; round < RACE_ROUNDS; round++) {
        CHECK_OK(obj_db_open(p, &o, &db));
        obj_txn *w = NULL;
        uint64_t id = 0;
        CHECK_OK(obj_txn_begin_write(db, &w));
        CHECK_OK(obj_doc_insert(w, "docs", JSON("{\"r\":1}"), 0, &id));
        volatile int go = 0;
        struct racer r = {.txn = w, .rollback = round % 4 == 3, .go = &go};
        pthread_t t;
        CHECK(pthread_create(&t, NULL, race_end, &r) == 0);
        go = 1;
        if (round % 2) sched_yield();
        CHECK_OK(round % 3 == 2 ? obj_db_close_no_checkpoint(db) : obj_db_close(db));
        pthread_join(t, NULL);
        CHECK_OK(r.status);
        if (!r.rollback) want++;
        /* Freed in either order. */
        if (round % 2) {
            CHECK_OK(obj_txn_free(w));
            CHECK_OK(obj_db_free(db));
        } else {
            CHECK_OK(obj_db_free(db));
            CHECK_OK(obj_txn_free(w));
        }
        check_reopened(p, want);
    }
    remove_db(p);
}

/* --- 4. One transaction, many threads --- */

struct txn_user {
    obj_db *db;
    obj_txn *txn;
    int nth;
    uint64_t first, last;
};

static void *begin_on_thread(void *arg) {
    struct txn_user *u = arg;
    CHECK_OK(obj_txn_begin_write(u->db, &u->txn));
    return NULL; /* the thread ends with the transaction open */
}

static void *insert_on_thread(void *arg) {
    struct txn_user *u = arg;
    for (int i = 0; i < 100; i++) {
        char doc[64];
        uint64_t id = 0;
        snprintf(doc, sizeof doc, "{\"t\":%d,\"i\":%d}", u->nth, i);
        CHECK_OK(obj_doc_insert(u->txn, "docs", JSON(doc), 0, &id));
        CHECK_OK(obj_kv_put(u->txn, "kv", JSON(doc), U8("x"), 1));
        if (i == 0) u->first = id;
        u->last = id;
    }
    return NULL;
}

static void *commit_on_thread(void *arg) {
    struct txn_user *u = arg;
    CHECK_OK(obj_txn_commit(u->txn));
    return NULL;
}

static void test_txn_across_threads(void) {
    char p[520];
    db_path(p, sizeof p, "across");
    obj_options o;
    CHECK_OK(obj_options_init(&o));
    o.busy_timeout_ms = 200;
    obj_db *db = make_db(p, 0, &o);
    struct txn_user u = {.db = db};
    pthread_t t;
    /* Begun on a thread that has ended since. */
    CHECK(pthread_create(&t, NULL, begin_on_thread, &u) == 0);
    pthread_join(t, NULL);
    CHECK(u.txn != NULL);
    obj_txn *w2 = NULL;
    CHECK_ERR(obj_txn_begin_write(db, &w2), OBJ_BUSY, "write transaction");
    /* Written by four threads at once: the calls are serialised. */
    enum { N = 4 };
    struct txn_user us[N];
    pthread_t ts[N];
    for (int i = 0; i < N; i++) {
        us[i] = (struct txn_user){.db = db, .txn = u.txn, .nth = i};
        CHECK(pthread_create(&ts[i], NULL, insert_on_thread, &us[i]) == 0);
    }
    for (int i = 0; i < N; i++) pthread_join(ts[i], NULL);
    uint64_t n = 0;
    CHECK_OK(obj_collection_count(u.txn, "docs", &n));
    CHECK(n == 100 * N);
    /* Committed by yet another thread. */
    CHECK(pthread_create(&t, NULL, commit_on_thread, &u) == 0);
    pthread_join(t, NULL);
    CHECK_OK(obj_txn_free(u.txn));
    /* The writer is free again for this thread. */
    CHECK_OK(obj_txn_begin_write(db, &w2));
    CHECK_OK(obj_txn_rollback(w2));
    CHECK_OK(obj_txn_free(w2));
    CHECK(count_of(db, "docs") == 100 * N);
    /* A write transaction begun on a thread that ended, never committed:
     * freed elsewhere, it rolls back and lets the writer go. */
    u.txn = NULL;
    CHECK(pthread_create(&t, NULL, begin_on_thread, &u) == 0);
    pthread_join(t, NULL);
    us[0] = (struct txn_user){.db = db, .txn = u.txn, .nth = 9};
    CHECK(pthread_create(&t, NULL, insert_on_thread, &us[0]) == 0);
    pthread_join(t, NULL);
    CHECK_OK(obj_txn_free(u.txn));
    CHECK_OK(obj_db_doc_insert(db, "docs", JSON("{\"after\":1}"), 0, &n));
    CHECK(count_of(db, "docs") == 100 * N + 1);
    CHECK_OK(obj_db_integrity_check(db, NULL));
    CHECK_OK(obj_db_free(db));
    remove_db(p);
}

/* --- 5. A second writer waits out the busy timeout --- */

struct waiter {
    obj_db *db;
    int use_one_call;
    obj_status status;
    double waited_ms;
    char message[256];
};

static void *second_writer(void *arg) {
    struct waiter *w = arg;
    obj_txn *t = (obj_txn *)&t;
    double start = now_ms();
    if (w->use_one_call) {
        uint64_t id = 0;
        w->status = obj_db_doc_insert(w->db, "docs", JSON("{\"second\":1}"), 0, &id);
    } else {
        w->status = obj_txn_begin_write(w->db, &t);
        if (w->status != OBJ_OK) CHECK(t == (obj_txn *)&t); /* untouched */
    }
    w->waited_ms = now_ms() - start;
    snprintf(w->message, sizeof w->message, "%s", obj_last_error());
    if (w->status == OBJ_OK && !w->use_one_call) {
        uint64_t id = 0;
        CHECK_OK(obj_doc_insert(t, "docs", JSON("{\"second\":1}"), 0, &id));
        CHECK_OK(obj_txn_commit(t));
        CHECK_OK(obj_txn_free(t));
    }
    return NULL;
}

static void test_busy_timeout_between_threads(void) {
    char p[520];
    db_path(p, sizeof p, "busy");
    obj_options o;
    CHECK_OK(obj_options_init(&o));
    o.busy_timeout_ms = 300;
    obj_db *db = make_db(p, 1, &o);
    obj_txn *w = NULL;
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_ERR(obj_cursor_free((obj_cursor *)w), OBJ_INVALID_ARGUMENT, "not a valid cursor handle");
    for (int one_call = 0; one_call < 2; one_call++) {
        struct waiter wt = {.db = db, .use_one_call = one_call};
        pthread_t t;
        CHECK(pthread_create(&t, NULL, second_writer, &wt) == 0);
        pthread_join(t, NULL);
        CHECK_STATUS(wt.status, OBJ_BUSY);
        CHECK(wt.waited_ms >= 290 && wt.waited_ms < 5000);
        CHECK(strstr(wt.message, "write transaction") != NULL);
        /* That thread's message is not this one's. */
        CHECK(strstr(obj_last_error(), "not a valid cursor handle") != NULL);
    }
    /* Within the timeout the second writer gets in once the first ends. */
    obj_db *db2 = NULL;
    o.busy_timeout_ms = 20000;
    CHECK_OK(obj_db_open(p, &o, &db2)); /* its own timeout, same engine */
    struct waiter wt = {.db = db2};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, second_writer, &wt) == 0);
    usleep(150 * 1000);
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    pthread_join(t, NULL);
    CHECK_OK(wt.status);
    CHECK(wt.waited_ms >= 100 && wt.waited_ms < 15000);
    CHECK(count_of(db, "docs") == 2);
    CHECK_OK(obj_db_free(db2));
    CHECK_OK(obj_db_free(db));
    remove_db(p);
}

/* --- 6. The last error, per thread --- */

struct err_thread {
    obj_db *db;
    const char *ns; /* a bad namespace name, echoed in the message */
    pthread_barrier_t *barrier;
    int ok;
};

static void *error_thread(void *arg) {
    struct err_thread *e = arg;
    /* A new thread has no message. */
    CHECK(strcmp(obj_last_error(), "") == 0);
    obj_txn *r = NULL;
    CHECK_OK(obj_txn_begin_read(e->db, &r));
    /* A missing collection named after this thread: OBJ_NOT_FOUND naming it. */
    obj_bytes b = {0};
    CHECK_STATUS(obj_collection_info(r, e->ns, &b), OBJ_NOT_FOUND);
    const char *msg = obj_last_error();
    CHECK(strstr(msg, e->ns) != NULL);
    pthread_barrier_wait(e->barrier); /* every thread has failed once */
    pthread_barrier_wait(e->barrier);
    /* Still this thread's message, whatever the others did meanwhile, and
     * a successful call does not change it ("the most recent failed call"). */
    CHECK(strstr(obj_last_error(), e->ns) != NULL);
    uint64_t n = 0;
    CHECK_OK(obj_collection_count(r, "docs", &n));
    CHECK(strstr(obj_last_error(), e->ns) != NULL);
    CHECK_OK(obj_txn_free(r));
    e->ok = 1;
    return NULL;
}

static pthread_key_t tsd_key;
static obj_db *tsd_db;
static volatile int tsd_result = -1;

/* Runs when a thread that set `tsd_key` ends, after the thread's own code:
 * cleanup code of C libraries commonly frees handles from here. */
static void tsd_destructor(void *value) {
    obj_txn *r = value;
    int ok = 1;
    uint64_t n = 0;
    ok &= obj_collection_count(r, "docs", &n) == OBJ_OK;
    /* A failing call records its message, and obj_last_error reads it. */
    ok &= obj_collection_info(r, "no-such", &(obj_bytes){0}) == OBJ_NOT_FOUND;
    ok &= strstr(obj_last_error(), "no-such") != NULL;
    ok &= obj_cursor_free((obj_cursor *)r) == OBJ_INVALID_ARGUMENT;
    ok &= obj_last_error() != NULL;
    ok &= obj_txn_free(r) == OBJ_OK;
    tsd_result = ok;
}

static void *tsd_thread(void *arg) {
    (void)arg;
    obj_txn *r = NULL;
    CHECK_OK(obj_txn_begin_read(tsd_db, &r));
    obj_bytes b = {0};
    CHECK_STATUS(obj_collection_info(r, "first", &b), OBJ_NOT_FOUND); /* this thread has a message */
    pthread_setspecific(tsd_key, r);
    return NULL;
}

static void test_last_error_per_thread(void) {
    char p[520];
    db_path(p, sizeof p, "errors");
    obj_db *db = make_db(p, 1, NULL);
    enum { N = 4 };
    static const char *names[N] = {"missing-a", "missing-b", "missing-c", "missing-d"};
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, N + 1);
    struct err_thread e[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        e[i] = (struct err_thread){.db = db, .ns = names[i], .barrier = &barrier};
        CHECK(pthread_create(&t[i], NULL, error_thread, &e[i]) == 0);
    }
    pthread_barrier_wait(&barrier);
    /* This thread fails too, in between. */
    CHECK_ERR(obj_txn_free((obj_txn *)db), OBJ_INVALID_ARGUMENT, "not a valid transaction handle");
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK(e[i].ok);
    }
    CHECK(strstr(obj_last_error(), "not a valid transaction handle") != NULL);
    pthread_barrier_destroy(&barrier);

    /* Calls from a thread-specific-data destructor, after the thread's
     * function returned. Run in a child: a failure may abort the process. */
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        obj_db *cdb = NULL;
        if (obj_db_open(p, NULL, &cdb) != OBJ_OK) _exit(3);
        tsd_db = cdb;
        pthread_key_create(&tsd_key, tsd_destructor);
        pthread_t th;
        pthread_create(&th, NULL, tsd_thread, NULL);
        pthread_join(th, NULL);
        obj_db_free(cdb);
        _exit(tsd_result == 1 ? 0 : 2);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "tsd child: %s %d\n", WIFSIGNALED(status) ? "signal" : "exit",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_OK(obj_db_free(db));
    remove_db(p);
}

/* --- 7. Buffers: empty, and very large --- */

static void test_buffers(void) {
    char p[520];
    db_path(p, sizeof p, "buffers");
    obj_db *db = make_db(p, 0, NULL);
    obj_txn *w = NULL;
    obj_bytes b = {(uint8_t *)&b, 99}, k = {0};
    bool found = false, done = true;
    uint64_t id = 0;
    CHECK_OK(obj_txn_begin_write(db, &w));
    /* Empty values come back as {NULL, 0}, and free as a no-op. */
    CHECK_OK(obj_kv_put(w, "kv", U8("e"), 1, NULL, 0));
    CHECK_OK(obj_kv_get(w, "kv", U8("e"), 1, &b, &found));
    CHECK(found && b.data == NULL && b.len == 0);
    obj_bytes_free(&b);
    obj_bytes_free(&b);
    CHECK_OK(obj_raw_insert(w, "raw", NULL, 0, &id));
    b = (obj_bytes){(uint8_t *)&b, 99};
    CHECK_OK(obj_raw_get(w, "raw", id, &b, &found));
    CHECK(found && b.data == NULL && b.len == 0);
    /* A missing document: {NULL, 0} too. */
    b = (obj_bytes){(uint8_t *)&b, 99};
    CHECK_OK(obj_raw_get(w, "raw", id + 1, &b, &found));
    CHECK(!found && b.data == NULL && b.len == 0);
    obj_cursor *c = NULL;
    CHECK_OK(obj_kv_scan(w, "kv", NULL, 0, NULL, 0, NULL, 0, false, &c));
    CHECK_OK(obj_kv_cursor_next(c, &k, &b, &done));
    CHECK(!done && bytes_are(&k, "e") && b.data == NULL && b.len == 0);
    obj_bytes_free(&k);
    CHECK_OK(obj_kv_cursor_next(c, &k, &b, &done));
    CHECK(done);
    CHECK_OK(obj_cursor_free(c));
    /* An empty array, an empty batch. */
    size_t nids = 7;
    CHECK_OK(obj_doc_insert_many(w, "docs", JSON("[]"), 0, NULL, 0, &nids));
    CHECK(nids == 0);

    /* 17 MiB: a raw document, a key-value value and a JSON document. */
    const size_t big = 17u << 20;
    uint8_t *blob = malloc(big);
    CHECK(blob != NULL);
    for (size_t i = 0; i < big; i++) blob[i] = (uint8_t)(i * 131 + (i >> 12));
    uint64_t raw_id = 0;
    CHECK_OK(obj_raw_insert(w, "raw", blob, big, &raw_id));
    CHECK_OK(obj_kv_put(w, "kv", U8("big"), 3, blob, big));
    char *doc = long_string_doc("s", big, 'x');
    size_t dl = strlen(doc);
    uint64_t doc_id = 0;
    CHECK_OK(obj_doc_insert(w, "docs", U8(doc), dl, 3, &doc_id));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));

    obj_txn *r = NULL;
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_raw_get(r, "raw", raw_id, &b, &found));
    CHECK(found && b.len == big && memcmp(b.data, blob, big) == 0);
    obj_bytes_free(&b);
    CHECK_OK(obj_kv_get(r, "kv", U8("big"), 3, &b, &found));
    CHECK(found && b.len == big && memcmp(b.data, blob, big) == 0);
    obj_bytes_free(&b);
    uint32_t version = 0;
    CHECK_OK(obj_doc_get(r, "docs", doc_id, &b, &version, &found));
    CHECK(found && version == 3 && b.len == dl && memcmp(b.data, doc, dl) == 0);
    obj_bytes_free(&b);
    CHECK_OK(obj_query(r, JSON("{\"collection\":\"docs\"}"), &c));
    CHECK_OK(obj_cursor_next_batch(c, 10, &b));
    CHECK(b.len == dl + 8); /* [[1,3,<doc>]] */
    CHECK(memcmp(b.data, "[[1,3,", 6) == 0 && memcmp(b.data + 6, doc, dl) == 0);
    obj_bytes_free(&b);
    CHECK_OK(obj_cursor_free(c));
    CHECK_OK(obj_txn_free(r));
    free(doc);
    free(blob);
    CHECK_OK(obj_db_integrity_check(db, NULL));
    CHECK_OK(obj_db_free(db));
    remove_db(p);
}

/* --- 8. Out-parameters are written only on OBJ_OK; statuses reachable --- */

static void test_out_params_and_statuses(void) {
    char p[520], q[600];
    db_path(p, sizeof p, "outs");
    obj_db *db = make_db(p, 2, NULL);
    obj_txn *r = NULL, *w = NULL;
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_OK(obj_txn_begin_write(db, &w));
    /* Not found: *out {NULL, 0}, *out_version untouched. */
    obj_bytes b = {(uint8_t *)&b, 5};
    uint32_t version = 77;
    bool found = true;
    CHECK_OK(obj_doc_get(r, "docs", 99, &b, &version, &found));
    CHECK(!found && b.data == NULL && b.len == 0 && version == 77);
    /* At the end of a cursor nothing but *done is written. */
    obj_cursor *c = NULL;
    CHECK_OK(obj_query(r, JSON("{\"collection\":\"docs\",\"offset\":5}"), &c));
    uint64_t id = 1234;
    bool done = false;
    b = (obj_bytes){(uint8_t *)&b, 5};
    CHECK_OK(obj_cursor_next(c, &id, &b, &version, &done));
    CHECK(done && id == 1234 && b.data == (uint8_t *)&b && b.len == 5 && version == 77);
    CHECK_OK(obj_cursor_free(c));
    /* insert_many with too small a capacity: nothing written, anywhere. */
    uint64_t ids[1] = {42};
    size_t count = 9;
    CHECK_ERR(obj_doc_insert_many(w, "docs", JSON("[{\"a\":1},{\"a\":2}]"), 0, ids, 1, &count), OBJ_INVALID_ARGUMENT,
              "");
    CHECK(ids[0] == 42 && count == 9);
    uint64_t n = 0;
    CHECK_OK(obj_collection_count(w, "docs", &n));
    CHECK(n == 2);
    /* A failed open leaves *out as it was. */
    obj_db *other = (obj_db *)&other;
    obj_options o;
    CHECK_OK(obj_options_init(&o));
    o.create = false;
    snprintf(q, sizeof q, "%s/no-such-dir-%d/x.obj", dir, (int)getpid());
    CHECK_STATUS(obj_db_open(q, &o, &other), OBJ_NOT_FOUND);
    CHECK(other == (obj_db *)&other);
    /* OBJ_CONSTRAINT, with the transaction going on. */
    CHECK_OK(obj_index_create(w, "docs", JSON("{\"name\":\"by_n\",\"kind\":\"unique\",\"fields\":[\"n\"]}")));
    id = 555;
    CHECK_ERR(obj_doc_insert(w, "docs", JSON("{\"n\":1}"), 0, &id), OBJ_CONSTRAINT, "by_n");
    CHECK(id == 555);
    CHECK_OK(obj_doc_insert(w, "docs", JSON("{\"n\":3}"), 0, &id));
    /* A unique lookup that finds nothing: *out_doc {NULL, 0}, the rest untouched. */
    id = 4321;
    version = 88;
    b = (obj_bytes){(uint8_t *)&b, 5};
    found = true;
    CHECK_OK(obj_find_unique(w, "docs", "by_n", JSON("[99]"), &id, &b, &version, &found));
    CHECK(!found && b.data == NULL && b.len == 0 && id == 4321 && version == 88);
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_txn_free(r));
    /* OBJ_IO: a backup into a directory that does not exist. */
    snprintf(q, sizeof q, "%s/no-such-dir-%d/backup.obj", dir, (int)getpid());
    CHECK_ERR(obj_db_backup(db, q, NULL, NULL, NULL), OBJ_IO, "no-such-dir");
    /* OBJ_ENCRYPTION: an encrypted copy opened without its key. */
    snprintf(q, sizeof q, "%s.enc", p);
    remove_db(q);
    obj_db *enc = NULL;
    uint8_t key[32] = {1, 2, 3};
    CHECK_OK(obj_options_init(&o));
    o.encryption_key = key;
    CHECK_OK(obj_db_open(q, &o, &enc));
    CHECK_OK(obj_db_doc_insert(enc, "docs", JSON("{\"secret\":1}"), 0, &id));
    CHECK_OK(obj_db_free(enc));
    enc = (obj_db *)&enc;
    CHECK_STATUS(obj_db_open(q, NULL, &enc), OBJ_ENCRYPTION);
    CHECK(enc == (obj_db *)&enc);
    remove_db(q);
    /* obj_status_name knows every code obj.h defines. */
    for (int code = OBJ_OK; code <= OBJ_CONSTRAINT; code++)
        CHECK(strcmp(obj_status_name(code), "OBJ_UNKNOWN_STATUS") != 0);
    CHECK_OK(obj_db_free(db));
    remove_db(p);
}


/* --- 9. Rekey and compaction on other threads while this one closes --- */

struct db_op {
    obj_db *db;
    int rekey;
    volatile int started, finished;
    obj_status status;
    int refused; /* rekeys refused because a call of the other thread was in progress */
};

static void *run_db_op(void *arg) {
    struct db_op *op = arg;
    op->started = 1;
    obj_bytes rep = {0};
    if (op->rekey) {
        /* OBJ_BUSY while a call is in progress on the handle (obj.h): the
         * other thread's calls come and go, so try again. */
        while ((op->status = obj_db_rekey(op->db, NULL, "review12 passphrase")) == OBJ_BUSY) {
            CHECK(strstr(obj_last_error(), "in progress") != NULL);
            op->refused++;
            sched_yield();
        }
    } else {
        op->status = obj_db_compact(op->db, &rep);
    }
    obj_bytes_free(&rep);
    op->finished = 1;
    return NULL;
}

static void test_ops_beside_close(void) {
    char p[520];
    db_path(p, sizeof p, "opsclose");
    obj_options o;
    CHECK_OK(obj_options_init(&o));
    o.busy_timeout_ms = 100;
    obj_db *db = make_db(p, 400, &o);
    obj_txn *r = NULL;
    /* A rekey needs every transaction of the handle finished. */
    CHECK_OK(obj_txn_begin_read(db, &r));
    CHECK_ERR(obj_db_rekey(db, NULL, "x"), OBJ_BUSY, "transaction");
    CHECK_OK(obj_txn_free(r));
    /* A rekey on another thread; calls meanwhile are OBJ_BUSY (or, once it
     * ended, OBJ_OK), and a close returns at once. */
    struct db_op op = {.db = db, .rekey = 1};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, run_db_op, &op) == 0);
    while (!op.started) sched_yield();
    obj_status s = OBJ_OK;
    obj_bytes b = {0};
    /* Calls until one meets the rekey at work (or it is over). */
    while (!op.finished) {
        s = obj_db_stat_json(db, &b);
        obj_bytes_free(&b);
        if (s == OBJ_BUSY) break;
        CHECK_OK(s);
        sched_yield();
    }
    if (s == OBJ_BUSY) CHECK(strstr(obj_last_error(), "rewriting") != NULL);
    CHECK_OK(obj_db_close(db));
    pthread_join(t, NULL);
    CHECK_OK(op.status);
    CHECK_ERR(obj_txn_begin_read(db, &r), OBJ_CLOSED, "closed");
    CHECK_OK(obj_db_free(db));
    db = NULL;
    CHECK_STATUS(obj_db_open(p, &o, &db), OBJ_ENCRYPTION);
    o.passphrase = "review12 passphrase";
    CHECK_OK(obj_db_open(p, &o, &db));
    CHECK(count_of(db, "docs") == 400);
    /* A compaction on another thread, the handle closed and freed under it. */
    obj_txn *w = NULL;
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_ERR(obj_query(w, JSON("{\"collection\":\"docs\"}"), NULL), OBJ_INVALID_ARGUMENT, "out");
    for (uint64_t id = 1; id <= 400; id += 2) CHECK_OK(obj_doc_delete(w, "docs", id, NULL));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    op = (struct db_op){.db = db};
    CHECK(pthread_create(&t, NULL, run_db_op, &op) == 0);
    while (!op.started) sched_yield();
    CHECK_OK(obj_db_close(db));
    pthread_join(t, NULL);
    CHECK(op.status == OBJ_OK || op.status == OBJ_CLOSED);
    CHECK_OK(obj_db_free(db));
    CHECK_OK(obj_db_open(p, &o, &db));
    CHECK(count_of(db, "docs") == 200);
    CHECK_OK(obj_db_integrity_check(db, NULL));
    /* A pointer that was never a handle (readable memory without a tag). */
    uint64_t not_a_handle[8] = {0};
    CHECK_ERR(obj_txn_free((obj_txn *)not_a_handle), OBJ_INVALID_ARGUMENT, "not a handle from this library");
    CHECK_ERR(obj_cursor_free((obj_cursor *)not_a_handle), OBJ_INVALID_ARGUMENT, "not a handle from this library");
    CHECK_ERR(obj_db_free((obj_db *)not_a_handle), OBJ_INVALID_ARGUMENT, "not a handle from this library");
    CHECK_ERR(obj_db_free((obj_db *)&r), OBJ_INVALID_ARGUMENT, "not a valid database handle");
    CHECK_OK(obj_db_free(db));
    remove_db(p);
}

int main(int argc, char **argv) {
    snprintf(dir, sizeof dir, "%s", argc > 1 ? argv[1] : "/tmp");
    alarm(300); /* a hang fails the test */
    test_db_freed_under_children();
    test_reopen_beside_old_children();
    test_close_under_other_threads();
    test_commit_races_close();
    test_txn_across_threads();
    test_busy_timeout_between_threads();
    test_last_error_per_thread();
    test_buffers();
    test_out_params_and_statuses();
    test_ops_beside_close();
    printf("c review12: %d checks passed, 0 failed\n", checks_run);
    return 0;
}
