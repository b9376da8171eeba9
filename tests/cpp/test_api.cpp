// The C ABI from C++17 through include/obj.hpp: RAII handles, exceptions
// carrying status and message, documents, indexes, cursors, scans.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <string>
#include <vector>

#include "check.hpp"
#include "obj.hpp"

// The largest single allocation through operator new while `tracking` is
// set: what a wrapper call allocates beside the library.
static bool tracking = false;
static size_t largest_new = 0;
void *operator new(size_t n) {
    if (tracking && n > largest_new) largest_new = n;
    if (void *p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void *p) noexcept { std::free(p); }
void operator delete(void *p, size_t) noexcept { std::free(p); }

static void test_documents(obj::Db &db) {
    {
        obj::Txn w = db.begin_write();
        w.create_collection("users");
        w.create_collection("files", true);
        uint64_t ann = w.insert("users", R"({"name":"ann","email":"a@x","age":30})", 2);
        uint64_t bob = w.insert("users", R"({"name":"bob","email":"b@x","age":40})", 2);
        CHECK(ann == 1 && bob == 2);
        std::vector<uint64_t> ids = w.insert_many("users", R"([{"name":"cy","email":"c@x","age":20},{"name":"di","email":"d@x","age":50}])", 2);
        CHECK(ids.size() == 2 && ids[0] == 3 && ids[1] == 4);
        CHECK(w.insert_many("users", "[]").empty());
        CHECK(w.insert_many("users", " [ \n ] ").empty());
        // The id buffer is sized by the array's length, not by its bytes
        // (it was 8/3 bytes per byte of JSON: 213 KB here for 2 ids).
        // Commas, brackets and quotes inside strings are not elements.
        std::string pad(80000, 'x');
        std::string big = R"([{"pad":")" + pad + R"(","t":"a,b]\",["}, {"n":[1,2,{"x":","}]}])";
        largest_new = 0;
        tracking = true;
        std::vector<uint64_t> two = w.insert_many("scratch", big);
        tracking = false;
        CHECK(two.size() == 2 && two[0] + 1 == two[1]);
        CHECK(largest_new < 1024);
        CHECK(w.insert_many("scratch", R"([{"s":"}{,\"]\\"} , {} ,{"l":[[],{"k":","}]}])").size() == 3);
        CHECK(w.drop_collection("scratch"));
        w.create_index("users", R"({"name":"by_email","kind":"unique","fields":["email"]})");
        w.create_index("users", R"({"name":"by_age","fields":["age"]})");
        CHECK(w.list_indexes("users") ==
              R"([{"fields":["email"],"kind":"unique","name":"by_email"},{"fields":["age"],"kind":"standard","name":"by_age"}])");

        auto d = w.get("users", ann);
        CHECK(d && d->version == 2 && d->json == R"({"name":"ann","email":"a@x","age":30})");
        CHECK(!w.get("users", 99));
        CHECK(w.get_many("users", {2, 99}) == R"([[2,{"name":"bob","email":"b@x","age":40}],null])");
        CHECK(w.upsert("users", 10, R"({"name":"ed","email":"e@x","age":33})"));
        CHECK(!w.upsert("users", 10, R"({"name":"ed","email":"e@x","age":34})", 3));
        w.replace("users", 10, R"({"name":"ed","email":"e@x","age":35})", 4);
        CHECK(w.get("users", 10)->version == 4);
        CHECK(w.remove("users", 10) && !w.remove("users", 10));
        expect_error(OBJ_NOT_FOUND, [&] { w.replace("users", 10, "{}"); });

        // Unique violation: status + message, no trace, the transaction goes on.
        std::string msg = expect_error(OBJ_CONSTRAINT, [&] { w.insert("users", R"({"email":"a@x"})"); });
        CHECK(contains(msg, "OBJ_CONSTRAINT") && contains(msg, "by_email"));
        expect_error(OBJ_CONSTRAINT, [&] { w.insert_many("users", R"([{"email":"z@x"},{"email":"b@x"}])"); });
        CHECK(w.count("users") == 4);
        CHECK(!w.find_unique("users", "by_email", R"(["z@x"])"));

        auto f = w.find_unique("users", "by_email", R"(["c@x"])");
        CHECK(f && f->id == 3 && f->version == 2 && contains(f->json, "\"cy\""));
        expect_error(OBJ_INVALID_ARGUMENT, [&] { w.find_unique("users", "by_age", "[20]"); });
        expect_error(OBJ_NOT_FOUND, [&] { w.find_unique("users", "nope", "[20]"); });

        // Raw documents and kind mismatches.
        std::string blob("\0bin\xff", 5);
        uint64_t fid = w.raw_insert("files", blob);
        CHECK(w.raw_get("files", fid) == blob);
        CHECK(!w.raw_get("files", 77));
        CHECK(w.raw_upsert("files", 5, "five") && !w.raw_upsert("files", 5, "FIVE"));
        expect_error(OBJ_INVALID_ARGUMENT, [&] { w.get("files", fid); });
        expect_error(OBJ_INVALID_ARGUMENT, [&] { w.raw_get("users", 1); });
        expect_error(OBJ_INVALID_ARGUMENT, [&] { w.create_collection("files"); });
        expect_error(OBJ_INVALID_ARGUMENT, [&] { w.insert("users", "{not json"); });
        expect_error(OBJ_INVALID_ARGUMENT, [&] { w.create_index("users", R"({"name":"x"})"); });

        CHECK(w.list_collections() == R"(["files","users"])");
        CHECK(contains(w.collection_info("users"), "\"count\":4"));
        expect_error(OBJ_NOT_FOUND, [&] { w.collection_info("nope"); });
        w.create_collection("tmp");
        CHECK(w.drop_collection("tmp") && !w.drop_collection("tmp"));
        w.commit();
        expect_error(OBJ_INVALID_ARGUMENT, [&] { w.commit(); });
    }
    {
        // A write transaction destroyed without commit rolls back.
        obj::Txn w = db.begin_write();
        w.insert("users", R"({"email":"gone@x"})");
    }
    obj::Txn r = db.begin_read();
    CHECK(r.count("users") == 4);
    CHECK(!r.find_unique("users", "by_email", R"(["gone@x"])"));
    std::string msg = expect_error(OBJ_INVALID_ARGUMENT, [&] { r.insert("users", "{}"); });
    CHECK(contains(msg, "read transaction"));
}

static void test_cursors(obj::Db &db) {
    obj::Txn r = db.begin_read();
    obj::Cursor c = r.query(R"({"collection":"users","filter":{"ge":["age",30]},"sort":[{"field":"age","order":"desc"}]})");
    std::vector<uint64_t> ids;
    while (auto d = c.next()) ids.push_back(d->id);
    CHECK((ids == std::vector<uint64_t>{4, 2, 1}));
    CHECK(!c.next());

    obj::Cursor b = r.query(R"({"collection":"users","limit":3})");
    std::string batch = b.next_batch(2);
    CHECK(contains(batch, "[1,2,{") && contains(batch, "[2,2,{"));
    CHECK(contains(b.next_batch(2), "[3,2,{"));
    CHECK(b.next_batch(2) == "[]");
    expect_error(OBJ_INVALID_ARGUMENT, [&] { b.next_batch(0); });
    expect_error(OBJ_INVALID_ARGUMENT, [&] { b.next_kv(); });

    CHECK(r.query_count(R"({"collection":"users","filter":{"lt":["age",35]}})") == 2);
    CHECK(contains(r.explain(R"({"collection":"users","filter":{"eq":["age",30]}})"), "\"index\":\"by_age\""));
    expect_error(OBJ_INVALID_ARGUMENT, [&] { r.query("{\"collection\":"); });
    {
        obj::Cursor none = r.query(R"({"collection":"missing"})");
        CHECK(!none.next());
    }
    // Move semantics: the moved-from cursor is empty and frees nothing.
    obj::Cursor moved = std::move(c);
    CHECK(c.get() == nullptr && moved.get() != nullptr);

    obj::Cursor dump = r.dump("files");
    int records = 0;
    while (auto rec = dump.next_record()) {
        CHECK(rec->data.size() > 0 || rec->id > 0);
        records++;
    }
    CHECK(records == 2);

    // A cursor after its transaction ended throws; destroying it is fine.
    obj::Cursor late = r.query(R"({"collection":"users"})");
    r.commit();
    std::string msg = expect_error(OBJ_INVALID_ARGUMENT, [&] { late.next(); });
    CHECK(contains(msg, "transaction already ended"));

    // On a write transaction, a write ends open cursors.
    obj::Txn w = db.begin_write();
    obj::Cursor wc = w.query(R"({"collection":"users"})");
    CHECK(wc.next()->id == 1);
    w.kv_put("cfg", "k", "v");
    msg = expect_error(OBJ_INVALID_ARGUMENT, [&] { wc.next(); });
    CHECK(contains(msg, "changed under the cursor"));
    w.rollback();
}

static void test_kv(obj::Db &db) {
    {
        obj::Txn w = db.begin_write();
        for (const char *k : {"a1", "a2", "b1", "b2"}) w.kv_put("cfg", k, std::string("v") + k);
        w.kv_put("tmp", "x", "");
        CHECK(w.kv_list() == R"(["cfg","tmp"])");
        CHECK(w.kv_drop("tmp") && !w.kv_drop("tmp"));
        CHECK(w.kv_create("tmp") && !w.kv_create("tmp") && !w.kv_create("cfg"));
        CHECK(w.kv_list() == R"(["cfg","tmp"])");
        CHECK(w.kv_drop("tmp"));
        CHECK(w.kv_get("cfg", "a2") == std::string("va2"));
        CHECK(w.kv_delete("cfg", "a2") && !w.kv_delete("cfg", "a2"));
        w.commit();
    }
    obj::Txn r = db.begin_read();
    std::string keys;
    obj::Cursor all = r.kv_range("cfg", std::nullopt, std::nullopt);
    while (auto kv = all.next_kv()) keys += kv->first + "=" + kv->second + ";";
    CHECK(keys == "a1=va1;b1=vb1;b2=vb2;");
    keys.clear();
    obj::Cursor rng = r.kv_range("cfg", std::string_view("a2"), std::string_view("b2"), true);
    while (auto kv = rng.next_kv()) keys += kv->first + ";";
    CHECK(keys == "b1;");
    keys.clear();
    obj::Cursor pre = r.kv_prefix("cfg", "b", true);
    while (auto kv = pre.next_kv()) keys += kv->first + ";";
    CHECK(keys == "b2;b1;");
    obj::Cursor every = r.kv_prefix("cfg", "");
    int n = 0;
    while (every.next_kv()) n++;
    CHECK(n == 3);
    expect_error(OBJ_INVALID_ARGUMENT, [&] { every.next(); });
    // An engaged empty bound is the empty key, however the empty view was
    // made (data() NULL or not): only nullopt is an open end.
    auto count = [](obj::Cursor cur) {
        int k = 0;
        while (cur.next_kv()) k++;
        return k;
    };
    CHECK(count(r.kv_range("cfg", std::nullopt, std::string_view(""))) == 0);
    CHECK(count(r.kv_range("cfg", std::nullopt, std::string_view())) == 0);
    CHECK(count(r.kv_range("cfg", std::string_view(), std::nullopt)) == 3);
    CHECK(count(r.kv_range("cfg", std::string_view(), std::string_view("b"))) == 1);
    CHECK(count(r.kv_range("cfg", std::string_view(""), std::string_view())) == 0);
}

// The one-call reads on Db answer as a read transaction's calls do.
static void test_one_call_reads(obj::Db &db) {
    uint64_t id = 0, raw = 0;
    {
        obj::Txn w = db.begin_write();
        id = w.insert("one_call", R"({"n":7})", 3);
        raw = w.raw_insert("one_call_raw", std::string("a\0b", 3));
        w.kv_put("one_call_kv", std::string("k\0", 2), "v");
        w.kv_put("one_call_kv", "j", "w");
        CHECK(w.kv_count("one_call_kv") == 2);
        CHECK(db.count("one_call") == 0);  // not committed yet
        w.commit();
    }
    obj::Txn r = db.begin_read();
    auto doc = db.get("one_call", id);
    CHECK(doc && doc->json == r.get("one_call", id)->json && doc->version == 3 && doc->id == id);
    CHECK(!db.get("one_call", id + 1) && !db.get("no_such", 1));
    CHECK(db.raw_get("one_call_raw", raw) == std::string("a\0b", 3));
    CHECK(!db.raw_get("one_call_raw", raw + 1));
    CHECK(db.kv_get("one_call_kv", std::string("k\0", 2)) == std::string("v"));
    CHECK(!db.kv_get("one_call_kv", "k") && !db.kv_get("no_such", "k"));
    CHECK(db.count("one_call") == 1 && db.count("no_such") == 0);
    CHECK(r.kv_count("one_call_kv") == 2 && r.kv_count("no_such") == 0);
    expect_error(OBJ_INVALID_ARGUMENT, [&] { db.raw_get("one_call", id); });  // a document collection
    const std::string evil("one_call\0x", 10);
    for (auto call : std::initializer_list<std::function<void()>>{
             [&] { db.get(evil, id); }, [&] { db.raw_get(evil, raw); }, [&] { db.kv_get(evil, "k"); },
             [&] { db.count(evil); }, [&] { r.kv_count(evil); }})
        CHECK(contains(expect_error(OBJ_INVALID_ARGUMENT, call), "NUL"));
}

// A NUL byte inside a name or path would cut it short at the C boundary (a
// write to another collection, an open of another file): every wrapper call
// refuses it, as the operations on paths (backup, attach, ...) do.
static void test_nul_in_names(obj::Db &db, const std::string &path) {
    const std::string users_evil("users\0evil", 11), cfg_evil("cfg\0x", 5), by_evil("by_email\0x", 10);
    {
        obj::Txn w = db.begin_write();
        uint64_t before = w.count("users");
        auto refused = [](auto call) {
            CHECK(contains(expect_error(OBJ_INVALID_ARGUMENT, call), "NUL"));
        };
        refused([&] { w.insert(users_evil, R"({"a":1})"); });
        refused([&] { w.upsert(users_evil, 1, R"({"a":1})"); });
        refused([&] { w.insert_many(users_evil, R"([{"a":1}])"); });
        refused([&] { w.get(users_evil, 1); });
        refused([&] { w.remove(users_evil, 1); });
        refused([&] { w.count(users_evil); });
        refused([&] { w.create_collection(users_evil); });
        refused([&] { w.drop_collection(users_evil); });
        refused([&] { w.raw_insert(users_evil, "x"); });
        refused([&] { w.create_index(users_evil, R"({"name":"x","fields":["a"]})"); });
        refused([&] { w.drop_index("users", by_evil); });
        refused([&] { w.find_unique("users", by_evil, R"(["a@example.com"])"); });
        refused([&] { w.dump(users_evil); });
        refused([&] { w.kv_put(cfg_evil, "k", "v"); });
        refused([&] { w.kv_get(cfg_evil, "k"); });
        refused([&] { w.kv_drop(cfg_evil); });
        refused([&] { w.kv_prefix(cfg_evil, ""); });
        CHECK(w.count("users") == before);
        CHECK(!w.kv_get("cfg", "k"));
        w.rollback();
    }
    std::string other = path + ".nul";
    unlink(other.c_str());
    CHECK(contains(expect_error(OBJ_INVALID_ARGUMENT, [&] { obj::Db::open(other + std::string("\0x", 2)); }), "NUL"));
    CHECK(access(other.c_str(), F_OK) != 0);
}

int main(int argc, char **argv) {
    std::string dir = argc > 1 ? argv[1] : "/tmp";
    std::string path = dir + "/cpp-api-" + std::to_string(getpid()) + ".obj";
    unlink(path.c_str());
    expect_error(OBJ_INVALID_ARGUMENT, [&] { obj::Db::open(std::string("bad\xff")); });
    {
        obj::Db db = obj::Db::open(path);
        test_documents(db);
        test_cursors(db);
        test_kv(db);
        test_one_call_reads(db);
        test_nul_in_names(db, path);
        CHECK(contains(db.stat_json(), "\"name\":\"users\""));
        CHECK(contains(db.integrity_check(), "pages"));
        CHECK(db.checkpoint().complete);
        obj::Db other = std::move(db);
        other.close();
        expect_error(OBJ_CLOSED, [&] { other.begin_read(); });
        expect_error(OBJ_CLOSED, [&] { other.get("one_call", 1); });
        expect_error(OBJ_CLOSED, [&] { other.count("one_call"); });
    }
    unlink(path.c_str());
    unlink((path + "-wal").c_str());
    std::printf("c++ api: %d passed, 0 failed\n", checks);
    return 0;
}
