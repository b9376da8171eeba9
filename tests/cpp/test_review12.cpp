// Review 12 through obj.hpp: RAII objects whose destructors run in an
// order the C rules allow but a C++ programmer may not expect (a Txn and
// its Cursor outliving the Db object), a Txn moved to another thread and
// committed there, and obj::Error carrying the message of the thread that
// failed.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <thread>
#include <vector>

#include "check.hpp"

static std::string dir = "/tmp";

static std::string db_path(const char *name) {
    return dir + "/cpp-review12-" + name + "-" + std::to_string(getpid()) + ".obj";
}

static void remove_db(const std::string &p) {
    unlink(p.c_str());
    unlink((p + "-wal").c_str());
    unlink((p + "-shm").c_str());
}

static uint64_t count_docs(obj::Db &db) {
    obj::Txn r = db.begin_read();
    return r.count("docs");
}

static void test_children_outlive_db() {
    std::string p = db_path("outlive");
    remove_db(p);
    std::optional<obj::Txn> w;
    std::optional<obj::Txn> r;
    std::optional<obj::Cursor> c;
    {
        obj::Db db = obj::Db::open(p);
        {
            obj::Txn t = db.begin_write();
            for (int i = 0; i < 10; i++) t.insert("docs", "{\"n\":" + std::to_string(i) + "}");
            t.commit();
        }
        r.emplace(db.begin_read());
        c.emplace(r->query("{\"collection\":\"docs\"}"));
        w.emplace(db.begin_write());
        w->insert("docs", "{\"late\":true}");
    }  // ~Db: obj_db_free with the children open
    int seen = 0;
    while (c->next()) seen++;
    CHECK(seen == 10);
    CHECK(r->count("docs") == 10);
    w->commit();
    w.reset();
    r.reset();  // the transaction before its cursor
    auto msg = expect_error(OBJ_INVALID_ARGUMENT, [&] { c->next(); });
    CHECK(contains(msg, "freed"));
    c.reset();
    {
        obj::Db db = obj::Db::open(p);
        CHECK(count_docs(db) == 11);
        db.integrity_check();
    }
    remove_db(p);
}

static void test_txn_moved_across_threads() {
    std::string p = db_path("threads");
    remove_db(p);
    obj_options o = obj::default_options();
    o.busy_timeout_ms = 50;
    {
    obj::Db db = obj::Db::open(p, &o);
    obj::Txn w = db.begin_write();
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; i++)
        ts.emplace_back([&w, i] {
            for (int j = 0; j < 50; j++) w.insert("docs", "{\"t\":" + std::to_string(i) + "}");
        });
    for (auto &t : ts) t.join();
    // Another thread's writer is busy, with its own message in its Error.
    std::string other;
    std::thread([&] {
        try {
            db.begin_write();
        } catch (const obj::Error &e) {
            if (e.status() == OBJ_BUSY) other = e.what();
        }
    }).join();
    CHECK(contains(other, "OBJ_BUSY") && contains(other, "waited"));
    CHECK(!contains(obj_last_error(), "waited"));
    // Moved into a thread and committed (and destroyed) there.
    std::thread([t = std::move(w)]() mutable { t.commit(); }).join();
    CHECK(count_docs(db) == 150);
    obj::Txn w2 = db.begin_write();  // the writer was released
    w2.rollback();
    }
    remove_db(p);
}

int main(int argc, char **argv) {
    if (argc > 1) dir = argv[1];
    test_children_outlive_db();
    test_txn_moved_across_threads();
    std::printf("c++ review12: %d passed, 0 failed\n", checks);
    return 0;
}
