// Operating a database from C++17 through include/obj.hpp: backup under a
// concurrent writer (progress, cancel, callbacks that throw), restore,
// compaction, encryption keys and rekey, attach, export and import.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "check.hpp"
#include "obj.hpp"

static std::string dir;
static std::string at(const char *name) { return dir + "/cpp-ops-" + std::to_string(getpid()) + "-" + name; }
static void remove_db(const std::string &path) {
    unlink(path.c_str());
    unlink((path + "-wal").c_str());
    unlink((path + "-shm").c_str());
}
static bool exists(const std::string &path) { return access(path.c_str(), F_OK) == 0; }
static uint64_t file_size(const std::string &path) {
    struct stat st;
    CHECK(stat(path.c_str(), &st) == 0);
    return uint64_t(st.st_size);
}
static uint64_t count_of(obj::Db &db, const std::string &coll) { return db.begin_read().count(coll); }
// A top-level number of stat_json (its first occurrence: collection names
// here never shadow it).
static uint64_t stat_of(obj::Db &db, const char *key) { return obj::detail::report_field(db.stat_json(), key); }

// The document the test writes at id `i` (about 300 bytes).
static std::string order(uint64_t i) {
    return R"({"email":"u)" + std::to_string(i) + R"(@x","total":)" + std::to_string(i) + R"(,"note":")" +
           std::string(280, char('a' + i % 26)) + "\"}";
}

static void fill(obj::Db &db, uint64_t n) {
    obj::Txn w = db.begin_write();
    w.create_index("orders", R"({"name":"by_email","kind":"unique","fields":["email"]})");
    for (uint64_t i = 1; i <= n; i++) CHECK(w.insert("orders", order(i), 1) == i);
    w.commit();
}

// Every document of `coll` in id order as (id, version, json).
static std::vector<obj::Doc> docs_of(obj::Db &db, const std::string &coll) {
    obj::Txn r = db.begin_read();
    obj::Cursor c = r.query(R"({"collection":")" + coll + "\"}");
    std::vector<obj::Doc> out;
    while (auto d = c.next()) out.push_back(std::move(*d));
    return out;
}

struct Stop {
    uint64_t at;
};

static const uint64_t FILLED = 4000;

// Backup while another thread commits one document per transaction: the
// copy holds exactly the snapshot its report names, document by document.
static void test_backup(obj::Db &db, const std::string &src, const std::string &bak) {
    uint64_t c0 = stat_of(db, "commit_counter");
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> written{0};
    std::atomic<bool> writer_failed{false};
    std::thread writer([&] {
        try {
            for (uint64_t id = FILLED + 1; !stop; id++) {
                obj::Txn w = db.begin_write();
                if (w.insert("orders", order(id), 1) != id) throw std::runtime_error("unexpected id");
                w.commit();
                written++;
            }
        } catch (const std::exception &e) {
            std::fprintf(stderr, "writer: %s\n", e.what());
            writer_failed = true;
        }
    });
    std::vector<std::pair<uint64_t, uint64_t>> calls;
    bool waited = false;
    obj::BackupReport rep = db.backup(bak, [&](uint64_t done, uint64_t total) {
        calls.emplace_back(done, total);
        if (!waited) {
            // The snapshot is taken: let the writer commit a few more.
            uint64_t from = written;
            auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
            while (written < from + 5 && !writer_failed && std::chrono::steady_clock::now() < deadline)
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            waited = true;
        }
        return true;
    });
    stop = true;
    writer.join();
    CHECK(!writer_failed);
    CHECK(!rep.cancelled && contains(rep.json, "\"cancelled\":false"));
    // Progress: from 0, every 256 pages, to done == total.
    CHECK(calls.size() >= 3);
    CHECK(calls.front().first == 0 && calls.back().first == calls.back().second);
    for (size_t i = 1; i < calls.size(); i++)
        CHECK(calls[i].first >= calls[i - 1].first && calls[i].second == calls[0].second);
    CHECK(rep.pages == calls.back().second && rep.bytes == rep.pages * 4096);
    CHECK(file_size(bak) == rep.bytes);
    uint64_t c_end = stat_of(db, "commit_counter");
    CHECK(rep.commit_counter >= c0 && rep.commit_counter + 5 <= c_end);

    obj::Db copy = obj::Db::open(bak);
    CHECK(stat_of(copy, "commit_counter") == rep.commit_counter);
    std::vector<obj::Doc> docs = docs_of(copy, "orders");
    CHECK(docs.size() == FILLED + (rep.commit_counter - c0));
    bool same = true;
    for (size_t i = 0; i < docs.size(); i++)
        same = same && docs[i].id == i + 1 && docs[i].version == 1 && docs[i].json == order(i + 1);
    CHECK(same);
    CHECK(copy.begin_read().find_unique("orders", "by_email", R"(["u4000@x"])"));
    CHECK(contains(copy.integrity_check(), "pages"));
    CHECK(count_of(db, "orders") == FILLED + (c_end - c0));

    // Cancelled at the first call, at a middle one, at the last: nothing left.
    std::string other = at("cancelled.obj");
    obj::BackupReport none = db.backup(other, [](uint64_t, uint64_t) { return false; });
    CHECK(none.cancelled && none.pages == 0 && none.bytes == 0 && !exists(other));
    uint64_t cancelled_at = 0;
    obj::BackupReport mid = db.backup(other, [&](uint64_t done, uint64_t total) {
        if (done > 0 && done < total) {
            cancelled_at = done;
            return false;
        }
        return true;
    });
    CHECK(mid.cancelled && cancelled_at > 0 && mid.pages == cancelled_at && !exists(other));
    obj::BackupReport end = db.backup(other, [](uint64_t done, uint64_t total) { return done < total; });
    CHECK(end.cancelled && end.pages > 0 && !exists(other));

    // A callback that throws cancels the backup; its exception comes back
    // out of backup() (any type), and the callback is not called again.
    int after_throw = 0;
    bool thrown = false;
    checks++;
    try {
        db.backup(other, [&](uint64_t done, uint64_t) -> bool {
            if (thrown) after_throw++;
            if (done > 0) {
                thrown = true;
                throw Stop{done};
            }
            return true;
        });
        CHECK(!"backup returned after its callback threw");
    } catch (const Stop &s) {
        CHECK(s.at > 0);
    }
    CHECK(thrown && after_throw == 0 && !exists(other));
    checks++;
    try {
        db.backup(other, [](uint64_t done, uint64_t total) -> bool {
            if (done == total) throw std::runtime_error("at the end");
            return true;
        });
        CHECK(!"backup returned after its callback threw");
    } catch (const std::runtime_error &e) {
        CHECK(std::string(e.what()) == "at the end");
    }
    CHECK(!exists(other));
    // An obj::Error from a library call in the callback keeps its status and message.
    std::string msg = expect_error(OBJ_NOT_FOUND, [&] {
        db.backup(other, [&](uint64_t, uint64_t) {
            db.detach("nope");
            return true;
        });
    });
    CHECK(contains(msg, "nope") && !exists(other));
    // The database is fine afterwards, and a backup without a callback works.
    CHECK(count_of(db, "orders") == FILLED + (c_end - c0));
    obj::BackupReport plain = db.backup(other);
    CHECK(!plain.cancelled && file_size(other) == plain.bytes);
    remove_db(other);

    expect_error(OBJ_INVALID_ARGUMENT, [&] { db.backup(src); });  // the database itself
    expect_error(OBJ_INVALID_ARGUMENT, [&] { db.backup(std::string("x\0y", 3)); });
}

static void test_restore(const std::string &src, const std::string &bak, const std::string &res) {
    uint64_t n = 0;
    {
        obj::Db copy = obj::Db::open(bak);
        n = count_of(copy, "orders");
    }
    obj::restore(bak, res);
    {
        obj::Db r = obj::Db::open(res);
        CHECK(count_of(r, "orders") == n);
        expect_error(OBJ_BUSY, [&] { obj::restore(bak, res, true); });  // open here
    }
    expect_error(OBJ_INVALID_ARGUMENT, [&] { obj::restore(bak, res); });  // exists
    obj::restore(bak, res, true);
    expect_error(OBJ_BUSY, [&] { obj::restore(bak, src, true); });  // the open source
    expect_error(OBJ_NOT_FOUND, [&] { obj::restore(at("missing.obj"), res, true); });
    expect_error(OBJ_INVALID_ARGUMENT, [&] { obj::restore(bak, std::string("y\0z", 3), true); });
    remove_db(res);
}

// Compaction after deleting 90% of the documents.
static void test_compact(obj::Db &db, const std::string &src, const std::string &cpy) {
    uint64_t kept = 0;
    {
        obj::Txn w = db.begin_write();
        obj::Txn r = db.begin_read();
        obj::Cursor c = r.query(R"({"collection":"orders"})");
        while (auto d = c.next())
            if (d->id % 10 != 0)
                CHECK(w.remove("orders", d->id));
            else
                kept++;
        w.commit();
    }
    CHECK(db.checkpoint().complete);
    obj::CompactionEstimate est = db.compaction_estimate();
    CHECK(est.reclaimable_bytes > 0 && est.compacted_size < est.database_size);
    CHECK(est.reclaimable_bytes >= est.database_size - est.compacted_size);
    CHECK(contains(est.json, "\"reclaimable_bytes\":"));

    obj::CompactReport to = db.compact_to(cpy);
    CHECK(to.file_size_after < to.file_size_before && file_size(cpy) == to.file_size_after);
    CHECK(to.pages_after < to.pages_before && to.file_size_after == to.pages_after * 4096);
    {
        obj::Db copy = obj::Db::open(cpy);
        CHECK(count_of(copy, "orders") == kept);
        CHECK(contains(copy.integrity_check(), "pages"));
    }
    {
        // The writer's lock: compact() waits for an open write transaction.
        obj::Txn w = db.begin_write();
        expect_error(OBJ_BUSY, [&] { db.compact(); });
    }
    uint64_t before = file_size(src);
    obj::CompactReport in = db.compact();
    CHECK(in.rewritten && in.complete && in.file_size_before == before);
    CHECK(in.file_size_after < before && file_size(src) == in.file_size_after);
    CHECK(in.file_size_after == to.file_size_after);
    CHECK(!db.compact().rewritten);  // already compact
    CHECK(db.compaction_estimate().reclaimable_bytes == 0);
    CHECK(count_of(db, "orders") == kept);
    CHECK(contains(db.integrity_check(), "pages"));
    expect_error(OBJ_INVALID_ARGUMENT, [&] { db.compact_to(src); });  // the database itself
    remove_db(cpy);
}

// Encrypt, change the key, decrypt; wrong and missing keys.
static void test_encryption(const std::string &src, const std::string &bak, const std::string &res) {
    uint64_t n = 0;
    {
        obj::Db db = obj::Db::open(src);
        n = count_of(db, "orders");
        {
            obj::Txn r = db.begin_read();
            expect_error(OBJ_BUSY, [&] { db.rekey(obj::Key::passphrase("pw")); });
        }
        db.rekey(obj::Key::passphrase("correct horse"));
    }
    std::string msg = expect_error(OBJ_ENCRYPTION, [&] { obj::Db::open(src); });
    expect_error(OBJ_ENCRYPTION, [&] { obj::Db::open(src, obj::Key::passphrase("wrong")); });
    expect_error(OBJ_ENCRYPTION, [&] { obj::Db::open(src, obj::Key::raw(std::string(32, '\7'))); });
    // Wrapper-side checks of the key itself.
    expect_error(OBJ_INVALID_ARGUMENT, [] { obj::Key::raw("short"); });
    expect_error(OBJ_INVALID_ARGUMENT, [] { obj::Key::passphrase(std::string("a\0b", 3)); });
    std::array<uint8_t, 32> raw;
    raw.fill(7);
    remove_db(bak);
    {
        obj_options o = obj::default_options();
        o.busy_timeout_ms = 100;
        obj::Db db = obj::Db::open(src, obj::Key::passphrase("correct horse"), &o);
        CHECK(count_of(db, "orders") == n);
        // Copies keep the key; restore needs it and keeps it.
        db.backup(bak);
        expect_error(OBJ_ENCRYPTION, [&] { obj::restore(bak, res, true); });
        expect_error(OBJ_ENCRYPTION, [&] { obj::restore(bak, res, true, obj::Key::raw(raw)); });
        CHECK(!exists(res));
        obj::restore(bak, res, true, obj::Key::passphrase("correct horse"));
        expect_error(OBJ_ENCRYPTION, [&] { obj::Db::open(res); });
        obj::Db restored = obj::Db::open(res, obj::Key::passphrase("correct horse"));
        CHECK(count_of(restored, "orders") == n);
        restored.close();
        db.rekey(obj::Key::raw(raw));
    }
    expect_error(OBJ_ENCRYPTION, [&] { obj::Db::open(src, obj::Key::passphrase("correct horse")); });
    {
        obj::Db db = obj::Db::open(src, obj::Key::raw(std::string(32, '\7')));
        CHECK(count_of(db, "orders") == n);
        db.rekey(obj::Key());  // decrypt
    }
    expect_error(OBJ_ENCRYPTION, [&] { obj::Db::open(src, obj::Key::raw(raw)); });
    obj::Db db = obj::Db::open(src, obj::Key::none());
    CHECK(count_of(db, "orders") == n && contains(db.integrity_check(), "pages"));
    // The encrypted backup attaches with its key only.
    expect_error(OBJ_ENCRYPTION, [&] { db.attach(bak, "sec"); });
    expect_error(OBJ_ENCRYPTION, [&] { db.attach(bak, "sec", obj::Key::raw(raw)); });
    db.attach(bak, "sec", obj::Key::passphrase("correct horse"));
    CHECK(count_of(db, "sec.orders") == n);
    db.detach("sec");
    remove_db(res);
}

static void test_attach(obj::Db &db, const std::string &bak) {
    uint64_t n = 0;
    {
        obj::Db copy = obj::Db::open(bak);
        n = count_of(copy, "orders");
    }
    db.attach(bak, "arch");
    expect_error(OBJ_INVALID_ARGUMENT, [&] { db.attach(bak, "arch"); });
    expect_error(OBJ_NOT_FOUND, [&] { db.attach(at("missing.obj"), "gone"); });
    {
        obj::Txn r = db.begin_read();
        CHECK(r.count("arch.orders") == n);
        auto d = r.get("arch.orders", 7);
        CHECK(d && d->json == order(7));
        CHECK(r.query_count(R"({"collection":"arch.orders","filter":{"ge":["total",3991]}})") == 10);
        auto u = r.find_unique("arch.orders", "by_email", R"(["u12@x"])");
        CHECK(u && u->id == 12);
    }
    {
        obj::Txn w = db.begin_write();
        std::string msg = expect_error(OBJ_INVALID_ARGUMENT, [&] { w.insert("arch.orders", "{}"); });
        CHECK(contains(msg, "arch"));
        expect_error(OBJ_INVALID_ARGUMENT, [&] { w.remove("arch.orders", 1); });
    }
    obj::Txn before = db.begin_read();
    db.detach("arch");
    expect_error(OBJ_NOT_FOUND, [&] { db.detach("arch"); });
    CHECK(before.count("arch.orders") == n);  // its snapshot of the attachment
    CHECK(count_of(db, "arch.orders") == 0);
}

// Every value type, raw documents, ids with gaps, indexes, key-value
// entries: exported, imported into a fresh database, read back the same.
static void compare(obj::Db &a, obj::Db &b) {
    obj::Txn ra = a.begin_read(), rb = b.begin_read();
    CHECK(ra.list_collections() == rb.list_collections());
    for (const char *c : {"mixed", "blobs"}) CHECK(ra.collection_info(c) == rb.collection_info(c));
    CHECK(ra.list_indexes("mixed") == rb.list_indexes("mixed"));
    std::vector<obj::Doc> da = docs_of(a, "mixed"), db_ = docs_of(b, "mixed");
    CHECK(da.size() == db_.size() && da.size() == 10);
    for (size_t i = 0; i < da.size(); i++)
        CHECK(da[i].id == db_[i].id && da[i].version == db_[i].version && da[i].json == db_[i].json);
    obj::Cursor ca = ra.dump("blobs"), cb = rb.dump("blobs");
    int blobs = 0;
    while (auto x = ca.next_record()) {
        auto y = cb.next_record();
        CHECK(y && x->id == y->id && x->data == y->data);
        blobs++;
    }
    CHECK(blobs == 2 && !cb.next_record());
    CHECK(ra.kv_list() == rb.kv_list());
    obj::Cursor ka = ra.kv_prefix("cfg", ""), kb = rb.kv_prefix("cfg", "");
    int entries = 0;
    while (auto x = ka.next_kv()) {
        CHECK(kb.next_kv() == x);
        entries++;
    }
    CHECK(entries == 3 && !kb.next_kv());
    CHECK(rb.find_unique("mixed", "by_s", R"(["caf\u00e9 \u2713 \"q\""])"));
}

static void test_export_import(const std::string &dump, const std::string &bak) {
    std::string a_path = at("exp-a.obj"), b_path = at("exp-b.obj"), c_path = at("exp-c.obj");
    remove_db(a_path), remove_db(b_path), remove_db(c_path);
    obj::Db a = obj::Db::open(a_path);
    {
        obj::Txn w = a.begin_write();
        w.create_index("mixed", R"({"name":"by_s","kind":"unique","fields":["s"]})");
        w.create_index("mixed", R"({"name":"by_n","fields":["o.k.deep"]})");
        for (const char *doc : {R"({"i":-5,"big":9007199254740993})", R"({"f":1.5,"g":-0.25,"e":1e300})",
                                R"({"s":"café ✓ \"q\""})", R"({"b":true,"c":false,"n":null})",
                                R"({"l":[1,"two",[3,[]],{}]})", R"({"o":{"k":{"deep":1}}})",
                                R"({"bin":{"$bytes":"AAEC/w=="}})", R"({"ts":{"$ts":1700000000000000}})",
                                R"({"nan":{"$f64":"nan"},"inf":{"$f64":"-inf"},"$$d":1})"})
            w.insert("mixed", doc, 3);
        CHECK(w.upsert("mixed", 100, R"({"gap":true})", 7));
        w.raw_insert("blobs", std::string("\0\xff\n{", 4));
        CHECK(w.raw_upsert("blobs", 50, std::string(5000, 'z')));
        w.kv_put("cfg", std::string("\0k", 2), "bin\n");
        w.kv_put("cfg", "a", "");
        w.kv_put("cfg", "b", "{\"not\":\"a doc\"}");
        w.commit();
    }
    obj::ExportReport all = a.export_jsonl(dump);
    CHECK(all.collections == 2 && all.documents == 12 && all.kv_namespaces == 1 && all.kv_entries == 3);
    CHECK(all.commit_counter == stat_of(a, "commit_counter"));
    {
        obj::Db b = obj::Db::open(b_path);
        obj::ImportReport imp = b.import_jsonl(dump);
        CHECK(imp.collections == 2 && imp.documents == 12 && imp.indexes_created == 2);
        CHECK(imp.kv_namespaces == 1 && imp.kv_entries == 3 && imp.commits == 1);
        compare(a, b);
        // In batches: a commit every 2 lines.
        obj::Db c = obj::Db::open(c_path);
        obj::ImportReport batched = c.import_jsonl(dump, 2);
        CHECK(batched.documents == 12 && batched.commits > 1);
        compare(a, c);
    }
    // One collection.
    obj::ExportReport one = a.export_jsonl(dump, "blobs");
    CHECK(one.collections == 1 && one.documents == 2 && one.kv_entries == 0);
    expect_error(OBJ_NOT_FOUND, [&] { a.export_jsonl(dump, "no_such"); });
    // Never over a database: the open one, or a closed one.
    expect_error(OBJ_BUSY, [&] { a.export_jsonl(a_path); });
    expect_error(OBJ_INVALID_ARGUMENT, [&] { a.export_jsonl(bak); });
    expect_error(OBJ_NOT_FOUND, [&] { a.import_jsonl(at("missing.jsonl")); });
    {
        FILE *f = std::fopen(dump.c_str(), "wb");
        CHECK(f != nullptr);
        std::fputs("{\"obj_export\":1,\"collection\":\"l1\",\"kind\":\"documents\",\"next_id\":2,\"count\":1,"
                   "\"indexes\":[]}\nnot json\n",
                   f);
        CHECK(std::fclose(f) == 0);
    }
    std::string msg = expect_error(OBJ_INVALID_ARGUMENT, [&] { a.import_jsonl(dump); });
    CHECK(contains(msg, "import line 2"));
    CHECK(count_of(a, "l1") == 0);
    a.close();
    remove_db(a_path), remove_db(b_path), remove_db(c_path);
}

int main(int argc, char **argv) {
    dir = argc > 1 ? argv[1] : "/tmp";
    std::string src = at("src.obj"), bak = at("bak.obj"), res = at("restored.obj"), cpy = at("compact.obj"),
                dump = at("dump.jsonl");
    remove_db(src), remove_db(bak), remove_db(res), remove_db(cpy), unlink(dump.c_str());
    {
        obj_options o = obj::default_options();
        o.busy_timeout_ms = 200;
        obj::Db db = obj::Db::open(src, &o);
        fill(db, FILLED);
        test_backup(db, src, bak);
        test_restore(src, bak, res);
        test_attach(db, bak);
        test_compact(db, src, cpy);
        db.close();
    }
    test_encryption(src, bak, res);
    test_export_import(dump, bak);
    remove_db(src), remove_db(bak), remove_db(res), remove_db(cpy), unlink(dump.c_str());
    std::printf("c++ ops: %d passed, 0 failed\n", checks);
    return 0;
}
