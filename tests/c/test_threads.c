#define _GNU_SOURCE
/* Several reader threads and one writer on one database handle. Each
 * commit writes the same counter to keys "a" and "b" and inserts one
 * document; a reader's snapshot must always see the keys equal, as many
 * documents as the counter says (by count and by cursor), and never see
 * the counter go backwards. Then several threads drain cursors of one
 * shared read transaction at once. */
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>
#include "check.h"

#define COMMITS 300
#define READERS 4

static obj_db *db;
static volatile int done = 0;

static uint64_t read_u64(obj_txn *r, const char *key, bool *found) {
    obj_bytes v = {0};
    uint64_t n = 0;
    CHECK_OK(obj_kv_get(r, "counter", (const uint8_t *)key, 1, &v, found));
    if (*found) {
        CHECK(v.len == 8);
        memcpy(&n, v.data, 8);
    }
    obj_bytes_free(&v);
    return n;
}

static void *reader(void *arg) {
    (void)arg;
    uint64_t last = 0;
    long reads = 0;
    while (!done) {
        obj_txn *r = NULL;
        CHECK_OK(obj_txn_begin_read(db, &r));
        bool fa = false, fb = false;
        uint64_t a = read_u64(r, "a", &fa);
        uint64_t b = read_u64(r, "b", &fb);
        CHECK(fa == fb && a == b);
        CHECK(a >= last);
        if (reads % 256 == 1) {
            static const char q[] = "{\"collection\":\"docs\",\"filter\":{\"ge\":[\"n\",1]}}";
            uint64_t count = 99;
            CHECK_OK(obj_query_count(r, (const uint8_t *)q, strlen(q), &count));
            CHECK(count == a);
            obj_cursor *c = NULL;
            CHECK_OK(obj_query(r, (const uint8_t *)q, strlen(q), &c));
            uint64_t seen = 0;
            for (;;) {
                obj_bytes batch = {0};
                CHECK_OK(obj_cursor_next_batch(c, 7, &batch));
                size_t rows = 0;
                /* [[id,version,doc],...]: a row starts with '[' and a digit. */
                for (size_t i = 0; i + 1 < batch.len; i++) rows += batch.data[i] == '[' && batch.data[i + 1] >= '0' && batch.data[i + 1] <= '9';
                obj_bytes_free(&batch);
                if (rows == 0) break;
                seen += rows;
            }
            CHECK_OK(obj_cursor_free(c));
            CHECK(seen == a);
        }
        last = a;
        CHECK_OK(obj_txn_free(r));
        reads++;
        /* Let the writer run: under valgrind threads share one core, and
         * busy readers would starve it. */
        if (reads % 16 == 0) sched_yield();
    }
    return (void *)reads;
}

static obj_txn *shared;

/* Drains its own cursor on the shared transaction; returns the ids seen. */
static void *drainer(void *arg) {
    (void)arg;
    static const char q[] = "{\"collection\":\"docs\"}";
    obj_cursor *c = NULL;
    CHECK_OK(obj_query(shared, (const uint8_t *)q, strlen(q), &c));
    long seen = 0;
    uint64_t last = 0;
    for (;;) {
        uint64_t id = 0;
        obj_bytes doc = {0};
        bool end = false;
        CHECK_OK(obj_cursor_next(c, &id, &doc, NULL, &end));
        if (end) break;
        CHECK(id == last + 1);
        last = id;
        obj_bytes_free(&doc);
        seen++;
        if (seen % 32 == 0) sched_yield();
    }
    CHECK_OK(obj_cursor_free(c));
    return (void *)seen;
}

/* obj_db_close from one thread while another is inside a database-level
 * call never waits for that call. Calls once held the handle's lock while
 * they ran, so a close waited for them all, and deadlocked with a backup
 * whose progress callback made a call of its own. */
static volatile int in_backup = 0, close_returned = 0, writer_waiting = 0, writer_returned = 0;
static obj_status callback_status = OBJ_OK;

static bool stat_from_progress(uint64_t done, uint64_t total, void *ctx) {
    (void)total, (void)ctx;
    if (done == 0) {
        in_backup = 1;
        while (!close_returned) sched_yield();
    }
    obj_bytes b = {0};
    callback_status = obj_db_stat_json(db, &b);
    obj_bytes_free(&b);
    return true;
}

static void *backup_thread(void *arg) {
    obj_bytes rep = {0};
    CHECK_OK(obj_db_backup(db, (const char *)arg, stat_from_progress, NULL, &rep));
    char text[512] = {0}; /* obj_bytes are not NUL-terminated */
    memcpy(text, rep.data, rep.len < sizeof text - 1 ? rep.len : sizeof text - 1);
    CHECK(strstr(text, "\"cancelled\":false"));
    obj_bytes_free(&rep);
    return NULL;
}

static void *waiting_writer(void *arg) {
    (void)arg;
    obj_txn *w = NULL;
    writer_waiting = 1;
    obj_status s = obj_txn_begin_write(db, &w);
    writer_returned = 1;
    /* OBJ_CLOSED only if the close came first (the thread was slow to start). */
    if (s == OBJ_CLOSED) return NULL;
    /* It began before the close: its transaction works like any other still open. */
    CHECK_OK(s);
    uint64_t seven = 7;
    CHECK_OK(obj_kv_put(w, "counter", (const uint8_t *)"c", 1, (const uint8_t *)&seven, 8));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    return NULL;
}

static void test_close_waits_for_no_call(const char *path, const char *backup) {
    char wal[600];
    snprintf(wal, sizeof wal, "%s-wal", path);
    alarm(120); /* a hang fails the test */
    CHECK_OK(obj_db_open(path, NULL, &db));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, backup_thread, (void *)backup) == 0);
    while (!in_backup) sched_yield();
    CHECK_OK(obj_db_close(db));
    close_returned = 1;
    pthread_join(t, NULL);
    CHECK(callback_status == OBJ_CLOSED);
    CHECK(access(wal, F_OK) != 0); /* folded as the backup returned */
    CHECK_OK(obj_db_free(db));

    /* A close beside a begin_write waiting for the writer (for up to 60 s)
       does not end the wait. A thread that reaches its call only after the
       close (a loaded machine may hold it back past the second below) gets
       OBJ_CLOSED, which shows nothing: such a round runs again, and the
       test fails when no round of five saw the writer wait through the
       close. */
    obj_options o;
    obj_options_init(&o);
    o.busy_timeout_ms = 60000;
    obj_txn *r = NULL;
    for (int round = 1;; round++) {
        CHECK(round <= 5);
        writer_waiting = writer_returned = 0;
        CHECK_OK(obj_db_open(path, &o, &db));
        obj_txn *w = NULL;
        CHECK_OK(obj_txn_begin_write(db, &w));
        CHECK(pthread_create(&t, NULL, waiting_writer, NULL) == 0);
        while (!writer_waiting) sched_yield();
        sleep(1); /* into its wait */
        CHECK_OK(obj_db_close(db));
        int waited = !writer_returned;
        CHECK_STATUS(obj_txn_begin_read(db, &r), OBJ_CLOSED);
        CHECK_OK(obj_txn_free(w)); /* lets the waiting writer in */
        pthread_join(t, NULL);
        CHECK_OK(obj_db_free(db));
        if (waited) break;
    }
    alarm(0);
    CHECK(access(wal, F_OK) != 0); /* folded once its transaction ended */
    CHECK_OK(obj_db_open(path, NULL, &db));
    bool found = false;
    CHECK_OK(obj_txn_begin_read(db, &r));
    uint64_t c = read_u64(r, "c", &found);
    CHECK(!found || c == 7);
    CHECK_OK(obj_txn_free(r));
    CHECK_OK(obj_db_free(db));
}

/* obj_db_index_create fills the index in batches, each a write
 * transaction of its own: a writer on another thread commits between them,
 * and sees the index "building" meanwhile, where a build inside one
 * transaction (obj_index_create) kept it waiting to the end. */
static obj_db *build_db;
static volatile int building = 0, built = 0;
static void *writer_beside_build(void *arg) {
    long *seen_building = arg;
    while (!building) sched_yield();
    while (!built) {
        uint64_t id = 0;
        const char *doc = "{\"n\":-1}";
        CHECK_OK(obj_db_doc_insert(build_db, "docs", (const uint8_t *)doc, strlen(doc), 0, &id));
        obj_bytes st = {0};
        CHECK_OK(obj_db_stat_json(build_db, &st));
        if (!built && memmem(st.data, st.len, "\"building\"", 10) != NULL) (*seen_building)++;
        obj_bytes_free(&st);
    }
    return NULL;
}

static void test_index_build_lets_writers_in(const char *path) {
    unlink(path);
    obj_options o;
    obj_options_init(&o);
    o.sync_mode = 2; /* off: the batches' commits, not fsyncs, are the test */
    CHECK_OK(obj_db_open(path, &o, &build_db));
    obj_txn *w = NULL;
    CHECK_OK(obj_txn_begin_write(build_db, &w));
    for (int i = 0; i < 40000; i++) {
        char doc[64];
        uint64_t id = 0;
        snprintf(doc, sizeof doc, "{\"n\":%d}", i % 997);
        CHECK_OK(obj_doc_insert(w, "docs", (const uint8_t *)doc, strlen(doc), 0, &id));
    }
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    long seen_building = 0;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, writer_beside_build, &seen_building) == 0);
    const char *spec = "{\"name\":\"by_n\",\"fields\":[\"n\"]}";
    building = 1;
    CHECK_OK(obj_db_index_create(build_db, "docs", (const uint8_t *)spec, strlen(spec)));
    built = 1;
    pthread_join(t, NULL);
    CHECK(seen_building > 0);
    /* Every document written meanwhile is in the index. */
    obj_txn *r = NULL;
    uint64_t all = 0, by_index = 0;
    CHECK_OK(obj_txn_begin_read(build_db, &r));
    CHECK_OK(obj_collection_count(r, "docs", &all));
    const char *q = "{\"collection\":\"docs\",\"index\":{\"name\":\"by_n\"}}";
    CHECK_OK(obj_query_count(r, (const uint8_t *)q, strlen(q), &by_index));
    CHECK(all == by_index && all > 40000);
    CHECK_OK(obj_txn_free(r));
    CHECK_OK(obj_db_integrity_check(build_db, NULL));
    CHECK_OK(obj_db_free(build_db));
    unlink(path);
}

int main(int argc, char **argv) {
    char path[512], wal[520];
    snprintf(path, sizeof path, "%s/c-threads-%d.obj", argc > 1 ? argv[1] : "/tmp", (int)getpid());
    snprintf(wal, sizeof wal, "%s-wal", path);
    unlink(path);
    obj_options o;
    obj_options_init(&o);
    o.sync_mode = 1;
    o.wal_autocheckpoint = 64;
    CHECK_OK(obj_db_open(path, &o, &db));
    pthread_t t[READERS];
    for (int i = 0; i < READERS; i++) CHECK(pthread_create(&t[i], NULL, reader, NULL) == 0);
    for (uint64_t n = 1; n <= COMMITS; n++) {
        obj_txn *w = NULL;
        CHECK_OK(obj_txn_begin_write(db, &w));
        CHECK_OK(obj_kv_put(w, "counter", (const uint8_t *)"a", 1, (const uint8_t *)&n, 8));
        CHECK_OK(obj_kv_put(w, "counter", (const uint8_t *)"b", 1, (const uint8_t *)&n, 8));
        char doc[64];
        uint64_t id = 0;
        snprintf(doc, sizeof doc, "{\"n\":%llu}", (unsigned long long)n);
        CHECK_OK(obj_doc_insert(w, "docs", (const uint8_t *)doc, strlen(doc), 0, &id));
        CHECK(id == n);
        CHECK_OK(obj_txn_commit(w));
        CHECK_OK(obj_txn_free(w));
    }
    done = 1;
    long total = 0;
    for (int i = 0; i < READERS; i++) {
        void *reads;
        pthread_join(t[i], &reads);
        total += (long)reads;
    }
    CHECK(total > 0);

    /* One read transaction, a cursor per thread, all stepping at once. */
    CHECK_OK(obj_txn_begin_read(db, &shared));
    for (int i = 0; i < READERS; i++) CHECK(pthread_create(&t[i], NULL, drainer, NULL) == 0);
    for (int i = 0; i < READERS; i++) {
        void *seen;
        pthread_join(t[i], &seen);
        CHECK((long)seen == COMMITS);
    }
    CHECK_OK(obj_txn_free(shared));
    CHECK_OK(obj_db_integrity_check(db, NULL));
    CHECK_OK(obj_db_free(db));
    char backup[600];
    snprintf(backup, sizeof backup, "%s-backup.obj", path);
    test_close_waits_for_no_call(path, backup);
    test_index_build_lets_writers_in(path);
    unlink(backup);
    unlink(path);
    unlink(wal);
    printf("c threads: %d passed, 0 failed (%ld snapshot reads beside %d commits)\n", checks_run, total, COMMITS);
    return 0;
}
