/* Operating a database through the C ABI: backup and restore, compaction,
 * attach, export and import, encryption keys and rekey, and their error
 * paths. */
#include <string.h>
#include <unistd.h>
#include "check.h"

#define J(s) (const uint8_t *)(s), strlen(s)

static char dir[400];

static const char *at(const char *name, char *buf) {
    snprintf(buf, 512, "%s/%s", dir, name);
    return buf;
}

/* A JSON report as a C string (obj_bytes are not NUL-terminated). */
static const char *report_text(const obj_bytes *b) {
    static char text[1024];
    size_t n = b->len < sizeof text - 1 ? b->len : sizeof text - 1;
    if (n) memcpy(text, b->data, n);
    text[n] = 0;
    return text;
}

static bool report_has(const obj_bytes *b, const char *part) { return strstr(report_text(b), part) != NULL; }

/* The unsigned number after "key": in a JSON report; -1 if it is not there. */
static long long report_field(const obj_bytes *b, const char *key) {
    char want[64];
    const char *text = report_text(b);
    snprintf(want, sizeof want, "\"%s\":", key);
    const char *at_key = strstr(text, want);
    return at_key ? strtoll(at_key + strlen(want), NULL, 10) : -1;
}

static void fill(obj_db *db, int n) {
    obj_txn *w = NULL;
    CHECK_OK(obj_txn_begin_write(db, &w));
    CHECK_OK(obj_index_create(w, "orders", J("{\"name\":\"by_email\",\"kind\":\"unique\",\"fields\":[\"email\"]}")));
    for (int i = 0; i < n; i++) {
        char doc[200];
        uint64_t id;
        snprintf(doc, sizeof doc, "{\"email\":\"u%d@x\",\"total\":%d,\"note\":\"%0100d\"}", i, i, i);
        CHECK_OK(obj_doc_insert(w, "orders", J(doc), 1, &id));
    }
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
}

/* Flips one bit at byte `offset` of the file at `path`. */
static void flip_bit(const char *path, long offset) {
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    CHECK(fseek(f, offset, SEEK_SET) == 0);
    int c = fgetc(f);
    CHECK(c != EOF);
    CHECK(fseek(f, offset, SEEK_SET) == 0);
    CHECK(fputc(c ^ 0x10, f) != EOF);
    CHECK(fclose(f) == 0);
}

static int progress_calls = 0;
static bool on_progress(uint64_t done, uint64_t total, void *ctx) {
    CHECK(ctx == (void *)&progress_calls && done <= total);
    progress_calls++;
    return true;
}
static bool cancel(uint64_t done, uint64_t total, void *ctx) {
    (void)done, (void)total, (void)ctx;
    return false;
}
/* Cancels at the last call, once every page is copied. */
static uint64_t last_total = 0;
static bool cancel_at_end(uint64_t done, uint64_t total, void *ctx) {
    (void)ctx;
    last_total = total;
    return done < total;
}

/* Database-level calls from a backup's progress callback. The backup once
 * held the handle's lock throughout, so a close or a rekey from here never
 * returned. Now none waits for the backup: a rekey is OBJ_BUSY (a call is in
 * progress), a close returns at once, the backup finishes on the database
 * as it was and, as it returns, closes it as the close asked. */
enum { CB_REKEY, CB_CLOSE, CB_CLOSE_NO_CHECKPOINT };
static obj_db *cb_db;
static bool call_back(uint64_t done, uint64_t total, void *ctx) {
    int what = *(const int *)ctx;
    obj_bytes b = {0};
    (void)total;
    if (done > 0) {
        /* After the first call's close, the handle is closed. */
        CHECK_STATUS(obj_db_stat_json(cb_db, &b), what == CB_REKEY ? OBJ_OK : OBJ_CLOSED);
        obj_bytes_free(&b);
        return true;
    }
    switch (what) {
    case CB_REKEY:
        CHECK_ERR(obj_db_rekey(cb_db, NULL, "pw"), OBJ_BUSY, "in progress");
        CHECK_OK(obj_db_stat_json(cb_db, &b));
        obj_bytes_free(&b);
        break;
    case CB_CLOSE:
        CHECK_OK(obj_db_close(cb_db));
        CHECK_OK(obj_db_close(cb_db));
        CHECK_STATUS(obj_db_stat_json(cb_db, &b), OBJ_CLOSED);
        CHECK_STATUS(obj_db_rekey(cb_db, NULL, "pw"), OBJ_CLOSED);
        break;
    default:
        CHECK_OK(obj_db_close_no_checkpoint(cb_db));
        CHECK_OK(obj_db_close(cb_db)); /* the first close decides */
        CHECK_STATUS(obj_db_compact(cb_db, NULL), OBJ_CLOSED);
        break;
    }
    return true;
}

static void test_calls_from_progress(int what) {
    char p1[512], p2[512], wal[600];
    const char *src = at("ops-cb.obj", p1), *bak = at("ops-cb-bak.obj", p2);
    remove_db(src), remove_db(bak);
    snprintf(wal, sizeof wal, "%s-wal", src);
    CHECK_OK(obj_db_open(src, NULL, &cb_db));
    fill(cb_db, 300);
    CHECK(access(wal, F_OK) == 0);
    obj_bytes rep = {0};
    alarm(120); /* a hang fails the test */
    CHECK_OK(obj_db_backup(cb_db, bak, call_back, &what, &rep));
    alarm(0);
    CHECK(report_has(&rep, "\"cancelled\":false"));
    obj_bytes_free(&rep);
    if (what == CB_CLOSE) CHECK(access(wal, F_OK) != 0);             /* folded as the backup returned */
    if (what == CB_CLOSE_NO_CHECKPOINT) CHECK(access(wal, F_OK) == 0); /* left for the next open */
    CHECK_STATUS(obj_db_integrity_check(cb_db, NULL), what == CB_REKEY ? OBJ_OK : OBJ_CLOSED);
    CHECK_OK(obj_db_free(cb_db));
    obj_db *copy = NULL;
    CHECK_OK(obj_db_open(bak, NULL, &copy));
    CHECK(count_of(copy, "orders") == 300);
    CHECK_OK(obj_db_free(copy));
    CHECK_OK(obj_db_open(src, NULL, &copy)); /* plain: the rekey did not happen */
    CHECK(count_of(copy, "orders") == 300);
    CHECK_OK(obj_db_free(copy));
    remove_db(src), remove_db(bak);
}

int main(int argc, char **argv) {
    snprintf(dir, sizeof dir, "%s", argc > 1 ? argv[1] : "/tmp");
    char p1[512], p2[512], p3[512], p4[512], p5[512];
    const char *src = at("ops-src.obj", p1), *bak = at("ops-bak.obj", p2), *res = at("ops-restored.obj", p3);
    const char *dump = at("ops-dump.jsonl", p4), *cpy = at("ops-compact.obj", p5);
    remove_db(src), remove_db(bak), remove_db(res), remove_db(cpy), unlink(dump);

    obj_db *db = NULL;
    CHECK_OK(obj_db_open(src, NULL, &db));
    fill(db, 2000);

    /* Backup with progress; a cancelled backup leaves nothing. */
    obj_bytes rep = {0};
    CHECK_OK(obj_db_backup(db, bak, on_progress, &progress_calls, &rep));
    CHECK(progress_calls > 0 && rep.len > 0 && report_has(&rep, "\"cancelled\":false"));
    obj_bytes_free(&rep);
    char other[512];
    CHECK_OK(obj_db_backup(db, at("ops-cancelled.obj", other), cancel, NULL, &rep));
    CHECK(report_has(&rep, "\"cancelled\":true"));
    CHECK(report_field(&rep, "pages") == 0 && report_field(&rep, "bytes") == 0); /* nothing copied */
    obj_bytes_free(&rep);
    CHECK(access(other, F_OK) != 0);
    /* A cancel at the last call (done == total) is honoured too; the report
     * gives the pages copied before it. */
    CHECK_OK(obj_db_backup(db, other, cancel_at_end, NULL, &rep));
    CHECK(report_has(&rep, "\"cancelled\":true"));
    CHECK(last_total > 0 && report_field(&rep, "pages") == (long long)last_total);
    CHECK(report_field(&rep, "bytes") == (long long)last_total * 4096);
    obj_bytes_free(&rep);
    CHECK(access(other, F_OK) != 0);
    CHECK_STATUS(obj_db_backup(db, NULL, NULL, NULL, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_backup(NULL, bak, NULL, NULL, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_backup(db, src, NULL, NULL, NULL), OBJ_INVALID_ARGUMENT); /* the database itself */
    CHECK(strstr(obj_last_error(), "own file") != NULL);
    test_calls_from_progress(CB_REKEY);
    test_calls_from_progress(CB_CLOSE);
    test_calls_from_progress(CB_CLOSE_NO_CHECKPOINT);

    /* Restore: refuses an existing target without overwrite, and an open one. */
    CHECK_OK(obj_db_restore(bak, res, false));
    CHECK_STATUS(obj_db_restore(bak, res, false), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_restore(bak, src, true), OBJ_BUSY);
    CHECK_STATUS(obj_db_restore(at("missing.obj", other), res, true), OBJ_NOT_FOUND);
    {
        /* An empty file is no backup and no database to attach; the message
         * says so (it once said "the database is read-only", which the
         * caller never asked for). */
        FILE *f = fopen(at("empty.obj", other), "wb");
        CHECK(f != NULL && fclose(f) == 0);
        CHECK_ERR(obj_db_restore(other, res, true), OBJ_INVALID_ARGUMENT, "is empty (0 bytes): not an obj database");
        CHECK_ERR(obj_db_attach(db, other, "empty"), OBJ_INVALID_ARGUMENT, "is empty (0 bytes): not an obj database");
        remove_db(other);
    }
    obj_db *r = NULL;
    CHECK_OK(obj_db_open(res, NULL, &r));
    CHECK(count_of(r, "orders") == 2000);
    CHECK_OK(obj_db_free(r));

    /* Compaction after deleting most documents. */
    obj_txn *w = NULL;
    CHECK_OK(obj_txn_begin_write(db, &w));
    for (uint64_t id = 1; id <= 1800; id++) CHECK_OK(obj_doc_delete(w, "orders", id, NULL));
    CHECK_OK(obj_txn_commit(w));
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_db_compact_to(db, cpy, &rep));
    obj_bytes_free(&rep);
    CHECK_OK(obj_db_compact(db, &rep));
    CHECK(report_has(&rep, "\"rewritten\":true"));
    obj_bytes_free(&rep);
    CHECK(count_of(db, "orders") == 200);
    CHECK_OK(obj_db_integrity_check(db, NULL));

    /* Attach the backup read-only under "arch". */
    CHECK_OK(obj_db_attach(db, bak, "arch"));
    CHECK_STATUS(obj_db_attach(db, bak, "arch"), OBJ_INVALID_ARGUMENT);
    CHECK_STATUS(obj_db_attach(db, at("missing.obj", other), "gone"), OBJ_NOT_FOUND);
    CHECK(count_of(db, "arch.orders") == 2000);
    {
        /* Queries and dumps reach the attached collection too (they once
         * saw an empty one while obj_query_count saw every document). */
        obj_txn *t = NULL;
        obj_cursor *c = NULL;
        obj_bytes d = {0};
        uint64_t n = 0, qid = 0;
        uint32_t v = 0;
        bool done = true;
        const char *q = "{\"collection\":\"arch.orders\",\"filter\":{\"ge\":[\"total\",1990]}}";
        CHECK_OK(obj_txn_begin_read(db, &t));
        CHECK_OK(obj_query_count(t, J(q), &n));
        CHECK(n == 10);
        CHECK_OK(obj_query(t, J(q), &c));
        n = 0;
        for (;;) {
            CHECK_OK(obj_cursor_next(c, &qid, &d, NULL, &done));
            if (done) break;
            CHECK(qid == 1991 + n && d.len > 0);
            obj_bytes_free(&d);
            n++;
        }
        CHECK(n == 10);
        CHECK_OK(obj_cursor_free(c));
        CHECK_OK(obj_collection_dump(t, "arch.orders", &c));
        CHECK_OK(obj_dump_cursor_next(c, &qid, &v, &d, &done));
        CHECK(!done && qid == 1 && v == 1 && d.len > 0);
        obj_bytes_free(&d);
        CHECK_OK(obj_cursor_free(c));
        CHECK_OK(obj_txn_free(t));
        /* The same in a write transaction. */
        CHECK_OK(obj_txn_begin_write(db, &t));
        CHECK_OK(obj_query(t, J(q), &c));
        CHECK_OK(obj_cursor_next_batch(c, 1, &d));
        CHECK(d.len > 10 && memcmp(d.data, "[[1991,1,{", 10) == 0);
        obj_bytes_free(&d);
        CHECK_OK(obj_cursor_free(c));
        CHECK_OK(obj_txn_free(t));
    }
    {
        /* Attach covers collections only: a key-value call on "arch.x"
         * reads and writes this database's own namespace "arch.x". */
        obj_txn *t = NULL;
        obj_bytes v = {0};
        bool found = true;
        CHECK_OK(obj_txn_begin_write(db, &t));
        CHECK_OK(obj_kv_get(t, "arch.orders", J("k"), &v, &found));
        CHECK(!found);
        CHECK_OK(obj_kv_put(t, "arch.kv", J("k"), J("local")));
        CHECK_OK(obj_kv_get(t, "arch.kv", J("k"), &v, &found));
        CHECK(found && v.len == 5 && memcmp(v.data, "local", 5) == 0);
        obj_bytes_free(&v);
        CHECK_OK(obj_txn_rollback(t));
        CHECK_OK(obj_txn_free(t));
    }
    CHECK_OK(obj_txn_begin_write(db, &w));
    uint64_t id;
    CHECK_STATUS(obj_doc_insert(w, "arch.orders", J("{\"email\":\"new\"}"), 1, &id), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_txn_free(w));
    CHECK_OK(obj_db_detach(db, "arch"));
    CHECK_STATUS(obj_db_detach(db, "arch"), OBJ_NOT_FOUND);

    /* Export one collection, import it into another database. */
    CHECK_OK(obj_db_export(db, "orders", dump, &rep));
    CHECK(report_has(&rep, "\"documents\":200"));
    obj_bytes_free(&rep);
    CHECK_STATUS(obj_db_export(db, "no_such", dump, NULL), OBJ_NOT_FOUND);
    CHECK_OK(obj_db_export(db, "orders", dump, NULL));
    /* An export never overwrites a database: the open one, or a closed one. */
    CHECK_ERR(obj_db_export(db, "orders", src, NULL), OBJ_BUSY, "open database");
    CHECK_ERR(obj_db_export(db, NULL, bak, NULL), OBJ_INVALID_ARGUMENT, "is an obj database");
    {
        char side[600];
        snprintf(side, sizeof side, "%s-wal", src);
        CHECK_ERR(obj_db_export(db, NULL, side, NULL), OBJ_INVALID_ARGUMENT, "belongs to the database");
        snprintf(side, sizeof side, "%s-shm", src);
        CHECK_ERR(obj_db_export(db, NULL, side, NULL), OBJ_INVALID_ARGUMENT, "belongs to the database");
    }
    {
        obj_db *still = NULL;
        CHECK_OK(obj_db_open(bak, NULL, &still));
        CHECK(count_of(still, "orders") == 2000);
        CHECK_OK(obj_db_free(still));
    }
    obj_db *imp = NULL;
    remove_db(res);
    CHECK_OK(obj_db_open(res, NULL, &imp));
    CHECK_OK(obj_db_import(imp, dump, 50, &rep));
    CHECK(report_has(&rep, "\"documents\":200"));
    obj_bytes_free(&rep);
    CHECK(count_of(imp, "orders") == 200);
    CHECK_STATUS(obj_db_import(imp, at("missing.jsonl", other), 0, NULL), OBJ_NOT_FOUND);
    {
        /* Invalid UTF-8 in a line (a Latin-1 e-acute) is a malformed line,
         * named like the others, not an I/O error. */
        FILE *f = fopen(at("latin1.jsonl", other), "wb");
        CHECK(f != NULL);
        fputs("{\"obj_export\":1,\"collection\":\"l1\",\"kind\":\"documents\",\"next_id\":2,\"count\":1,\"indexes\":[]}\n", f);
        fputs("{\"id\":1,\"doc\":{\"name\":\"caf\xe9\"}}\n", f);
        CHECK(fclose(f) == 0);
        CHECK_ERR(obj_db_import(imp, other, 0, NULL), OBJ_INVALID_ARGUMENT, "import line 2: not valid UTF-8");
        CHECK(count_of(imp, "l1") == 0);
        unlink(other);
    }
    CHECK_OK(obj_db_free(imp));
    CHECK_OK(obj_db_free(db));

    /* Encryption: rekey to a passphrase, then open with it, without it, wrongly. */
    CHECK_OK(obj_db_open(src, NULL, &db));
    CHECK_OK(obj_db_rekey(db, NULL, "correct horse"));
    CHECK_OK(obj_db_free(db));
    obj_options o;
    obj_options_init(&o);
    CHECK_STATUS(obj_db_open(src, &o, &db), OBJ_ENCRYPTION);
    o.passphrase = "wrong";
    CHECK_STATUS(obj_db_open(src, &o, &db), OBJ_ENCRYPTION);
    uint8_t key[32];
    memset(key, 7, sizeof key);
    o.encryption_key = key;
    CHECK_STATUS(obj_db_open(src, &o, &db), OBJ_INVALID_ARGUMENT); /* both given */
    o.encryption_key = NULL;
    o.passphrase = "correct horse";
    CHECK_OK(obj_db_open(src, &o, &db));
    CHECK(count_of(db, "orders") == 200);
    /* Copies of an encrypted database are encrypted with the same key. */
    remove_db(bak), remove_db(res), remove_db(cpy);
    CHECK_OK(obj_db_backup(db, bak, NULL, NULL, NULL));
    CHECK_OK(obj_db_compact_to(db, cpy, NULL));
    CHECK_OK(obj_db_compaction_estimate(db, &rep));
    CHECK(report_has(&rep, "\"reclaimable_bytes\":"));
    obj_bytes_free(&rep);
    obj_db *copy = NULL;
    o.passphrase = NULL;
    CHECK_STATUS(obj_db_open(bak, &o, &copy), OBJ_ENCRYPTION);
    CHECK_STATUS(obj_db_open(cpy, &o, &copy), OBJ_ENCRYPTION);
    o.passphrase = "wrong";
    CHECK_STATUS(obj_db_open(bak, &o, &copy), OBJ_ENCRYPTION);
    o.passphrase = "correct horse";
    const char *copies[] = {bak, cpy};
    for (int i = 0; i < 2; i++) {
        CHECK_OK(obj_db_open(copies[i], &o, &copy));
        CHECK(count_of(copy, "orders") == 200);
        CHECK_OK(obj_db_integrity_check(copy, NULL));
        CHECK_OK(obj_db_free(copy));
    }
    /* Restore needs the backup's key; the restored file is encrypted too. */
    CHECK_STATUS(obj_db_restore(bak, res, true), OBJ_ENCRYPTION);
    CHECK(access(res, F_OK) != 0);
    CHECK_STATUS(obj_db_restore_with_key(bak, res, true, key, NULL), OBJ_ENCRYPTION);
    CHECK_OK(obj_db_restore_with_key(bak, res, true, NULL, "correct horse"));
    CHECK_OK(obj_db_open(res, &o, &copy));
    CHECK(count_of(copy, "orders") == 200);
    CHECK_OK(obj_db_free(copy));
    o.passphrase = NULL;
    CHECK_STATUS(obj_db_open(res, &o, &copy), OBJ_ENCRYPTION);
    o.passphrase = "correct horse";
    /* A flipped bit in the compacted copy's last page (the catalog, read
     * by every open) is corruption, not a key error. */
    FILE *f = fopen(cpy, "rb");
    CHECK(f != NULL && fseek(f, 0, SEEK_END) == 0);
    long size = ftell(f);
    fclose(f);
    CHECK(size > 4096 && size % 4096 == 0);
    flip_bit(cpy, size - 4096 + 100);
    obj_status st = obj_db_open(cpy, &o, &copy);
    if (st == OBJ_OK) {
        obj_txn *r = NULL;
        uint64_t n = 0;
        st = obj_txn_begin_read(copy, &r);
        if (st == OBJ_OK) {
            st = obj_collection_count(r, "orders", &n);
            CHECK_OK(obj_txn_free(r));
        }
        /* The integrity check lists the damaged page among its findings. */
        CHECK_STATUS(obj_db_integrity_check(copy, NULL), OBJ_INTEGRITY);
        CHECK_OK(obj_db_free(copy));
    }
    CHECK_STATUS(st, OBJ_CORRUPTION);
    CHECK_OK(obj_db_rekey(db, key, NULL)); /* to a raw key */
    CHECK_OK(obj_db_free(db));
    o.passphrase = NULL;
    o.encryption_key = key;
    CHECK_OK(obj_db_open(src, &o, &db));
    CHECK(count_of(db, "orders") == 200);
    CHECK_OK(obj_db_rekey(db, NULL, NULL)); /* decrypt */
    CHECK_OK(obj_db_free(db));
    CHECK_OK(obj_db_open(src, NULL, &db));
    CHECK(count_of(db, "orders") == 200);
    /* The encrypted backup attaches with its passphrase only. */
    CHECK_STATUS(obj_db_attach(db, bak, "sec"), OBJ_ENCRYPTION);
    CHECK_STATUS(obj_db_attach_with_key(db, bak, "sec", key, NULL), OBJ_ENCRYPTION);
    CHECK_STATUS(obj_db_attach_with_key(db, bak, "sec", key, "correct horse"), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_db_attach_with_key(db, bak, "sec", NULL, "correct horse"));
    CHECK(count_of(db, "sec.orders") == 200);
    CHECK_OK(obj_db_detach(db, "sec"));
    CHECK_STATUS(obj_db_rekey(NULL, NULL, NULL), OBJ_INVALID_ARGUMENT);
    CHECK_OK(obj_db_close(db));
    CHECK_STATUS(obj_db_compact(db, NULL), OBJ_CLOSED);
    CHECK_STATUS(obj_db_rekey(db, NULL, NULL), OBJ_CLOSED);
    CHECK_OK(obj_db_free(db));

    remove_db(src), remove_db(bak), remove_db(res), remove_db(cpy), unlink(dump);
    printf("c ops: %d passed, 0 failed\n", checks_run);
    return 0;
}
