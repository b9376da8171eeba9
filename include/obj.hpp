/*
 * obj.hpp — a thin header-only C++17 wrapper over obj.h (hand-written).
 *
 * Db, Txn and Cursor own their C handle and free it in their destructor
 * (move-only). Every failing call throws obj::Error, which carries the
 * obj_status and the message of obj_last_error(). Buffers come back as
 * std::string (bytes, not necessarily text); documents, queries and index
 * specs are JSON text exactly as in the C API (see obj.h).
 *
 * Lifetimes follow the C rules: a Txn that is destroyed without commit()
 * rolls back; a Cursor reads through its Txn and throws
 * Error(OBJ_INVALID_ARGUMENT) once that transaction has ended or written.
 * Thread-safety is that of the underlying handles (see obj.h).
 */
#ifndef OBJ_HPP
#define OBJ_HPP

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "obj.h"

namespace obj {

/** A failed obj_* call: its status code and message. */
class Error : public std::runtime_error {
public:
    Error(obj_status status, const std::string &message)
        : std::runtime_error(std::string(obj_status_name(status)) + ": " + message), status_(status) {}
    obj_status status() const noexcept { return status_; }

private:
    obj_status status_;
};

/** Throws Error unless `s` is OBJ_OK. */
inline void check(obj_status s) {
    if (s != OBJ_OK) throw Error(s, obj_last_error());
}

namespace detail {
/* Moves a library buffer into a std::string and frees it. */
inline std::string take(obj_bytes &b) {
    std::string s(b.data ? reinterpret_cast<const char *>(b.data) : "", b.len);
    obj_bytes_free(&b);
    return s;
}
inline const uint8_t *u8(std::string_view s) { return reinterpret_cast<const uint8_t *>(s.data()); }
/* Never NULL, even for an empty view whose data() is NULL (std::string_view{}):
 * for the bounds of obj_kv_scan, where NULL means "no bound" and an empty
 * non-NULL range is the empty key. */
inline const uint8_t *u8_bound(std::string_view s) {
    static const uint8_t empty = 0;
    return s.data() ? detail::u8(s) : &empty;
}
/* The number of elements of a JSON array, in one pass without allocating:
 * the commas at the array's own level (outside strings and nested values),
 * plus one unless it is empty. Exact for well-formed JSON; for malformed
 * JSON the library reports the JSON error itself. */
inline size_t json_array_length(std::string_view json) {
    size_t depth = 0, commas = 0;
    bool in_string = false, escaped = false, any = false;
    for (char ch : json) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (ch == '\\')
                escaped = true;
            else if (ch == '"')
                in_string = false;
            continue;
        }
        switch (ch) {
        case ' ': case '\t': case '\n': case '\r': break;
        case '[': case '{': any = any || depth == 1; depth++; break;
        case ']': case '}': if (depth > 0) depth--; break;
        case ',': if (depth == 1) commas++; break;
        case '"': in_string = true; any = any || depth == 1; break;
        default: any = any || depth == 1; break;
        }
    }
    return any ? commas + 1 : 0;
}
}  // namespace detail

/** One document from a read, a query or a unique lookup. */
struct Doc {
    uint64_t id = 0;
    uint32_t version = 0;
    std::string json;
};

/** One stored record from Txn::dump. */
struct Record {
    uint64_t id = 0;
    uint32_t version = 0;
    std::string data;
};

/** A query, key-value scan or dump cursor. */
class Cursor {
public:
    explicit Cursor(obj_cursor *c) noexcept : c_(c) {}
    Cursor(Cursor &&o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
    Cursor &operator=(Cursor &&o) noexcept {
        if (this != &o) {
            obj_cursor_free(c_);
            c_ = std::exchange(o.c_, nullptr);
        }
        return *this;
    }
    Cursor(const Cursor &) = delete;
    Cursor &operator=(const Cursor &) = delete;
    ~Cursor() { obj_cursor_free(c_); }

    /** Next document of a query; nullopt at the end. */
    std::optional<Doc> next() {
        Doc d;
        obj_bytes b = {nullptr, 0};
        bool done = false;
        check(obj_cursor_next(c_, &d.id, &b, &d.version, &done));
        if (done) return std::nullopt;
        d.json = detail::take(b);
        return d;
    }
    /** Up to `max` documents as the JSON array [[id, version, doc], ...]; "[]" at the end. */
    std::string next_batch(size_t max) {
        obj_bytes b = {nullptr, 0};
        check(obj_cursor_next_batch(c_, max, &b));
        return detail::take(b);
    }
    /** Next (key, value) of a key-value scan; nullopt at the end. */
    std::optional<std::pair<std::string, std::string>> next_kv() {
        obj_bytes k = {nullptr, 0}, v = {nullptr, 0};
        bool done = false;
        check(obj_kv_cursor_next(c_, &k, &v, &done));
        if (done) return std::nullopt;
        std::string key = detail::take(k);
        return std::make_pair(std::move(key), detail::take(v));
    }
    /** Next stored record of a dump; nullopt at the end. */
    std::optional<Record> next_record() {
        Record r;
        obj_bytes b = {nullptr, 0};
        bool done = false;
        check(obj_dump_cursor_next(c_, &r.id, &r.version, &b, &done));
        if (done) return std::nullopt;
        r.data = detail::take(b);
        return r;
    }
    obj_cursor *get() const noexcept { return c_; }

private:
    obj_cursor *c_;
};

/** A read or write transaction. Destroyed without commit(): rolled back. */
class Txn {
public:
    explicit Txn(obj_txn *t) noexcept : t_(t) {}
    Txn(Txn &&o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
    Txn &operator=(Txn &&o) noexcept {
        if (this != &o) {
            obj_txn_free(t_);
            t_ = std::exchange(o.t_, nullptr);
        }
        return *this;
    }
    Txn(const Txn &) = delete;
    Txn &operator=(const Txn &) = delete;
    ~Txn() { obj_txn_free(t_); }

    void commit() { check(obj_txn_commit(t_)); }
    void rollback() { check(obj_txn_rollback(t_)); }
    obj_txn *get() const noexcept { return t_; }

    // Collections.
    void create_collection(const std::string &name, bool raw = false) {
        check(obj_collection_create(t_, name.c_str(), raw ? OBJ_COLLECTION_RAW : 0));
    }
    bool drop_collection(const std::string &name) {
        bool existed = false;
        check(obj_collection_drop(t_, name.c_str(), &existed));
        return existed;
    }
    std::string list_collections() {
        obj_bytes b = {nullptr, 0};
        check(obj_collection_list(t_, &b));
        return detail::take(b);
    }
    std::string collection_info(const std::string &name) {
        obj_bytes b = {nullptr, 0};
        check(obj_collection_info(t_, name.c_str(), &b));
        return detail::take(b);
    }
    uint64_t count(const std::string &coll) {
        uint64_t n = 0;
        check(obj_collection_count(t_, coll.c_str(), &n));
        return n;
    }

    // Documents (JSON text).
    uint64_t insert(const std::string &coll, std::string_view json, uint32_t version = 0) {
        uint64_t id = 0;
        check(obj_doc_insert(t_, coll.c_str(), detail::u8(json), json.size(), version, &id));
        return id;
    }
    /** Inserts a JSON array of documents, all or nothing; returns their ids. */
    std::vector<uint64_t> insert_many(const std::string &coll, std::string_view json_array, uint32_t version = 0) {
        // One id per element, counted by a scan of the text (not sized by
        // its bytes: one large document needs one id).
        std::vector<uint64_t> ids(detail::json_array_length(json_array));
        size_t n = 0;
        check(obj_doc_insert_many(t_, coll.c_str(), detail::u8(json_array), json_array.size(), version, ids.data(),
                                  ids.size(), &n));
        ids.resize(n);
        return ids;
    }
    std::optional<Doc> get(const std::string &coll, uint64_t id) {
        Doc d;
        d.id = id;
        obj_bytes b = {nullptr, 0};
        bool found = false;
        check(obj_doc_get(t_, coll.c_str(), id, &b, &d.version, &found));
        if (!found) return std::nullopt;
        d.json = detail::take(b);
        return d;
    }
    /** JSON array: null or [version, doc] per id. */
    std::string get_many(const std::string &coll, const std::vector<uint64_t> &ids) {
        obj_bytes b = {nullptr, 0};
        check(obj_doc_get_many(t_, coll.c_str(), ids.data(), ids.size(), &b));
        return detail::take(b);
    }
    /** True when the id was new. */
    bool upsert(const std::string &coll, uint64_t id, std::string_view json, uint32_t version = 0) {
        bool created = false;
        check(obj_doc_upsert(t_, coll.c_str(), id, detail::u8(json), json.size(), version, &created));
        return created;
    }
    void replace(const std::string &coll, uint64_t id, std::string_view json, uint32_t version = 0) {
        check(obj_doc_replace(t_, coll.c_str(), id, detail::u8(json), json.size(), version));
    }
    /** True when the document existed. */
    bool remove(const std::string &coll, uint64_t id) {
        bool existed = false;
        check(obj_doc_delete(t_, coll.c_str(), id, &existed));
        return existed;
    }

    // Raw-bytes documents.
    uint64_t raw_insert(const std::string &coll, std::string_view data) {
        uint64_t id = 0;
        check(obj_raw_insert(t_, coll.c_str(), detail::u8(data), data.size(), &id));
        return id;
    }
    std::optional<std::string> raw_get(const std::string &coll, uint64_t id) {
        obj_bytes b = {nullptr, 0};
        bool found = false;
        check(obj_raw_get(t_, coll.c_str(), id, &b, &found));
        if (!found) return std::nullopt;
        return detail::take(b);
    }
    bool raw_upsert(const std::string &coll, uint64_t id, std::string_view data) {
        bool created = false;
        check(obj_raw_upsert(t_, coll.c_str(), id, detail::u8(data), data.size(), &created));
        return created;
    }

    // Indexes.
    void create_index(const std::string &coll, std::string_view spec_json) {
        check(obj_index_create(t_, coll.c_str(), detail::u8(spec_json), spec_json.size()));
    }
    void drop_index(const std::string &coll, const std::string &name) {
        check(obj_index_drop(t_, coll.c_str(), name.c_str()));
    }
    std::string list_indexes(const std::string &coll) {
        obj_bytes b = {nullptr, 0};
        check(obj_index_list(t_, coll.c_str(), &b));
        return detail::take(b);
    }
    std::optional<Doc> find_unique(const std::string &coll, const std::string &index, std::string_view values_json) {
        Doc d;
        obj_bytes b = {nullptr, 0};
        bool found = false;
        check(obj_find_unique(t_, coll.c_str(), index.c_str(), detail::u8(values_json), values_json.size(), &d.id, &b,
                              &d.version, &found));
        if (!found) return std::nullopt;
        d.json = detail::take(b);
        return d;
    }

    // Queries.
    Cursor query(std::string_view query_json) {
        obj_cursor *c = nullptr;
        check(obj_query(t_, detail::u8(query_json), query_json.size(), &c));
        return Cursor(c);
    }
    uint64_t query_count(std::string_view query_json) {
        uint64_t n = 0;
        check(obj_query_count(t_, detail::u8(query_json), query_json.size(), &n));
        return n;
    }
    std::string explain(std::string_view query_json) {
        obj_bytes b = {nullptr, 0};
        check(obj_query_explain(t_, detail::u8(query_json), query_json.size(), &b));
        return detail::take(b);
    }
    Cursor dump(const std::string &coll) {
        obj_cursor *c = nullptr;
        check(obj_collection_dump(t_, coll.c_str(), &c));
        return Cursor(c);
    }

    // Key-value namespaces.
    void kv_put(const std::string &ns, std::string_view key, std::string_view value) {
        check(obj_kv_put(t_, ns.c_str(), detail::u8(key), key.size(), detail::u8(value), value.size()));
    }
    std::optional<std::string> kv_get(const std::string &ns, std::string_view key) {
        obj_bytes b = {nullptr, 0};
        bool found = false;
        check(obj_kv_get(t_, ns.c_str(), detail::u8(key), key.size(), &b, &found));
        if (!found) return std::nullopt;
        return detail::take(b);
    }
    bool kv_delete(const std::string &ns, std::string_view key) {
        bool existed = false;
        check(obj_kv_delete(t_, ns.c_str(), detail::u8(key), key.size(), &existed));
        return existed;
    }
    bool kv_drop(const std::string &ns) {
        bool existed = false;
        check(obj_kv_drop(t_, ns.c_str(), &existed));
        return existed;
    }
    std::string kv_list() {
        obj_bytes b = {nullptr, 0};
        check(obj_kv_list(t_, &b));
        return detail::take(b);
    }
    /** Keys in [start, end); nullopt ends are open. An engaged empty bound
     *  is the empty key (an empty `end` gives no keys), whether or not its
     *  data() is NULL. */
    Cursor kv_range(const std::string &ns, std::optional<std::string_view> start, std::optional<std::string_view> end,
                    bool reverse = false) {
        obj_cursor *c = nullptr;
        check(obj_kv_scan(t_, ns.c_str(), start ? detail::u8_bound(*start) : nullptr, start ? start->size() : 0,
                          end ? detail::u8_bound(*end) : nullptr, end ? end->size() : 0, nullptr, 0, reverse, &c));
        return Cursor(c);
    }
    /** Keys starting with `prefix` (every key for an empty one). */
    Cursor kv_prefix(const std::string &ns, std::string_view prefix, bool reverse = false) {
        obj_cursor *c = nullptr;
        check(obj_kv_scan(t_, ns.c_str(), nullptr, 0, nullptr, 0, detail::u8_bound(prefix), prefix.size(), reverse,
                          &c));
        return Cursor(c);
    }

private:
    obj_txn *t_;
};

/** An open database. Usable from many threads at once. */
class Db {
public:
    /** Opens (or creates) the database at `path`; `opts` may be null for defaults. */
    static Db open(const std::string &path, const obj_options *opts = nullptr) {
        obj_db *d = nullptr;
        check(obj_db_open(path.c_str(), opts, &d));
        return Db(d);
    }
    explicit Db(obj_db *d) noexcept : d_(d) {}
    Db(Db &&o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
    Db &operator=(Db &&o) noexcept {
        if (this != &o) {
            obj_db_free(d_);
            d_ = std::exchange(o.d_, nullptr);
        }
        return *this;
    }
    Db(const Db &) = delete;
    Db &operator=(const Db &) = delete;
    ~Db() { obj_db_free(d_); }

    /** Closes now (checkpointing), reporting errors; the destructor closes quietly.
     *  Never waits for calls in progress on other threads: the last of them
     *  closes the database as it returns (see obj_db_close). */
    void close() { check(obj_db_close(d_)); }
    Txn begin_read() {
        obj_txn *t = nullptr;
        check(obj_txn_begin_read(d_, &t));
        return Txn(t);
    }
    Txn begin_write() {
        obj_txn *t = nullptr;
        check(obj_txn_begin_write(d_, &t));
        return Txn(t);
    }
    obj_checkpoint_result checkpoint() {
        obj_checkpoint_result r{};
        check(obj_db_checkpoint(d_, &r));
        return r;
    }
    std::string stat_json() {
        obj_bytes b = {nullptr, 0};
        check(obj_db_stat_json(d_, &b));
        return detail::take(b);
    }
    /** Throws Error(OBJ_INTEGRITY) listing the problems; returns a JSON summary. */
    std::string integrity_check() {
        obj_bytes b = {nullptr, 0};
        check(obj_db_integrity_check(d_, &b));
        return detail::take(b);
    }
    obj_db *get() const noexcept { return d_; }

private:
    obj_db *d_;
};

}  // namespace obj

#endif /* OBJ_HPP */
