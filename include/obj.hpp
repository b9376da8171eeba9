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
 *
 * Operating a database: Db::backup (with a Progress callback that can
 * cancel), obj::restore, Db::compact / compact_to / compaction_estimate,
 * Db::open with a Key and Db::rekey (encryption at rest), Db::attach /
 * detach, Db::export_jsonl / import_jsonl; their reports come back as
 * structs (BackupReport, ...) that keep the library's JSON too. Exceptions
 * never cross the C library: one thrown by a progress callback cancels the
 * backup and is rethrown by Db::backup.
 */
#ifndef OBJ_HPP
#define OBJ_HPP

#include <array>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
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
/* Frees a library buffer when it goes out of scope, also when copying it
 * out throws (std::bad_alloc). */
struct BytesGuard {
    obj_bytes &b;
    ~BytesGuard() { obj_bytes_free(&b); }
};
inline std::string take(obj_bytes &b) {
    BytesGuard guard{b};
    return std::string(b.data ? reinterpret_cast<const char *>(b.data) : "", b.len);
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
/* A field of one of the library's flat JSON reports (objects of numbers and
 * booleans only, so `"key":` cannot occur inside a value): the unsigned
 * integer, or true as 1 and false as 0; 0 when absent. */
inline uint64_t report_field(std::string_view json, std::string_view key) {
    std::string want = "\"" + std::string(key) + "\":";
    size_t at = json.find(want);
    if (at == std::string_view::npos) return 0;
    at += want.size();
    while (at < json.size() && json[at] == ' ') at++;
    if (json.substr(at, 4) == "true") return 1;
    uint64_t n = 0;
    while (at < json.size() && json[at] >= '0' && json[at] <= '9') n = n * 10 + uint64_t(json[at++] - '0');
    return n;
}
/* The state of one backup's progress trampoline: the caller's callable and
 * the first exception it threw (caught here, rethrown after the C call). */
struct ProgressCall {
    const std::function<bool(uint64_t, uint64_t)> *fn;
    std::exception_ptr error;
};
/* The obj_progress_fn given to the library: never lets an exception out
 * (one cancels the backup and is kept for the caller). */
inline bool progress_trampoline(uint64_t done, uint64_t total, void *ctx) noexcept {
    auto *call = static_cast<ProgressCall *>(ctx);
    if (call->error) return false;
    try {
        return (*call->fn)(done, total);
    } catch (...) {
        call->error = std::current_exception();
        return false;
    }
}
/* A path or name for the C API (every collection, index and namespace
 * name, every file path): a NUL byte inside would silently cut it short (a
 * different collection or file), so it is refused. */
inline const char *c_path(const std::string &s) {
    if (s.find('\0') != std::string::npos)
        throw Error(OBJ_INVALID_ARGUMENT, "a path or name cannot contain a NUL byte");
    return s.c_str();
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
        detail::BytesGuard key_guard{k}, value_guard{v}; /* both freed, whichever copy throws */
        if (done) return std::nullopt;
        std::string key(k.data ? reinterpret_cast<const char *>(k.data) : "", k.len);
        std::string value(v.data ? reinterpret_cast<const char *>(v.data) : "", v.len);
        return std::make_pair(std::move(key), std::move(value));
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

/** A read or write transaction. Destroyed without commit(): rolled back.
 *  `w = db.begin_write();` over a live write transaction begins the new one
 *  before the old one ends, so it waits out the busy timeout and throws
 *  OBJ_BUSY: end the old one first (commit(), rollback() or its scope). */
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
        check(obj_collection_create(t_, detail::c_path(name), raw ? OBJ_COLLECTION_RAW : 0));
    }
    bool drop_collection(const std::string &name) {
        bool existed = false;
        check(obj_collection_drop(t_, detail::c_path(name), &existed));
        return existed;
    }
    std::string list_collections() {
        obj_bytes b = {nullptr, 0};
        check(obj_collection_list(t_, &b));
        return detail::take(b);
    }
    std::string collection_info(const std::string &name) {
        obj_bytes b = {nullptr, 0};
        check(obj_collection_info(t_, detail::c_path(name), &b));
        return detail::take(b);
    }
    uint64_t count(const std::string &coll) {
        uint64_t n = 0;
        check(obj_collection_count(t_, detail::c_path(coll), &n));
        return n;
    }

    // Documents (JSON text).
    uint64_t insert(const std::string &coll, std::string_view json, uint32_t version = 0) {
        uint64_t id = 0;
        check(obj_doc_insert(t_, detail::c_path(coll), detail::u8(json), json.size(), version, &id));
        return id;
    }
    /** Inserts a JSON array of documents, all or nothing; returns their ids. */
    std::vector<uint64_t> insert_many(const std::string &coll, std::string_view json_array, uint32_t version = 0) {
        // One id per element, counted by a scan of the text (not sized by
        // its bytes: one large document needs one id).
        std::vector<uint64_t> ids(detail::json_array_length(json_array));
        size_t n = 0;
        check(obj_doc_insert_many(t_, detail::c_path(coll), detail::u8(json_array), json_array.size(), version,
                                  ids.data(), ids.size(), &n));
        ids.resize(n);
        return ids;
    }
    std::optional<Doc> get(const std::string &coll, uint64_t id) {
        Doc d;
        d.id = id;
        obj_bytes b = {nullptr, 0};
        bool found = false;
        check(obj_doc_get(t_, detail::c_path(coll), id, &b, &d.version, &found));
        if (!found) return std::nullopt;
        d.json = detail::take(b);
        return d;
    }
    /** JSON array: null or [version, doc] per id. */
    std::string get_many(const std::string &coll, const std::vector<uint64_t> &ids) {
        obj_bytes b = {nullptr, 0};
        check(obj_doc_get_many(t_, detail::c_path(coll), ids.data(), ids.size(), &b));
        return detail::take(b);
    }
    /** True when the id was new. */
    bool upsert(const std::string &coll, uint64_t id, std::string_view json, uint32_t version = 0) {
        bool created = false;
        check(obj_doc_upsert(t_, detail::c_path(coll), id, detail::u8(json), json.size(), version, &created));
        return created;
    }
    void replace(const std::string &coll, uint64_t id, std::string_view json, uint32_t version = 0) {
        check(obj_doc_replace(t_, detail::c_path(coll), id, detail::u8(json), json.size(), version));
    }
    /** True when the document existed. */
    bool remove(const std::string &coll, uint64_t id) {
        bool existed = false;
        check(obj_doc_delete(t_, detail::c_path(coll), id, &existed));
        return existed;
    }

    // Raw-bytes documents.
    uint64_t raw_insert(const std::string &coll, std::string_view data) {
        uint64_t id = 0;
        check(obj_raw_insert(t_, detail::c_path(coll), detail::u8(data), data.size(), &id));
        return id;
    }
    std::optional<std::string> raw_get(const std::string &coll, uint64_t id) {
        obj_bytes b = {nullptr, 0};
        bool found = false;
        check(obj_raw_get(t_, detail::c_path(coll), id, &b, &found));
        if (!found) return std::nullopt;
        return detail::take(b);
    }
    bool raw_upsert(const std::string &coll, uint64_t id, std::string_view data) {
        bool created = false;
        check(obj_raw_upsert(t_, detail::c_path(coll), id, detail::u8(data), data.size(), &created));
        return created;
    }

    // Indexes.
    void create_index(const std::string &coll, std::string_view spec_json) {
        check(obj_index_create(t_, detail::c_path(coll), detail::u8(spec_json), spec_json.size()));
    }
    void drop_index(const std::string &coll, const std::string &name) {
        check(obj_index_drop(t_, detail::c_path(coll), detail::c_path(name)));
    }
    std::string list_indexes(const std::string &coll) {
        obj_bytes b = {nullptr, 0};
        check(obj_index_list(t_, detail::c_path(coll), &b));
        return detail::take(b);
    }
    std::optional<Doc> find_unique(const std::string &coll, const std::string &index, std::string_view values_json) {
        Doc d;
        obj_bytes b = {nullptr, 0};
        bool found = false;
        check(obj_find_unique(t_, detail::c_path(coll), detail::c_path(index), detail::u8(values_json),
                              values_json.size(), &d.id, &b, &d.version, &found));
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
        check(obj_collection_dump(t_, detail::c_path(coll), &c));
        return Cursor(c);
    }

    // Key-value namespaces.
    void kv_put(const std::string &ns, std::string_view key, std::string_view value) {
        check(obj_kv_put(t_, detail::c_path(ns), detail::u8(key), key.size(), detail::u8(value), value.size()));
    }
    std::optional<std::string> kv_get(const std::string &ns, std::string_view key) {
        obj_bytes b = {nullptr, 0};
        bool found = false;
        check(obj_kv_get(t_, detail::c_path(ns), detail::u8(key), key.size(), &b, &found));
        if (!found) return std::nullopt;
        return detail::take(b);
    }
    /** Entries in namespace `ns` (0 if missing); kept with it, no walk. */
    uint64_t kv_count(const std::string &ns) {
        uint64_t n = 0;
        check(obj_kv_count(t_, detail::c_path(ns), &n));
        return n;
    }
    bool kv_delete(const std::string &ns, std::string_view key) {
        bool existed = false;
        check(obj_kv_delete(t_, detail::c_path(ns), detail::u8(key), key.size(), &existed));
        return existed;
    }
    /** Creates namespace `ns` if missing (so it exists while empty);
     *  true if it was created. */
    bool kv_create(const std::string &ns) {
        bool created = false;
        check(obj_kv_create(t_, detail::c_path(ns), &created));
        return created;
    }
    bool kv_drop(const std::string &ns) {
        bool existed = false;
        check(obj_kv_drop(t_, detail::c_path(ns), &existed));
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
        check(obj_kv_scan(t_, detail::c_path(ns), start ? detail::u8_bound(*start) : nullptr,
                          start ? start->size() : 0, end ? detail::u8_bound(*end) : nullptr, end ? end->size() : 0,
                          nullptr, 0, reverse, &c));
        return Cursor(c);
    }
    /** Keys starting with `prefix` (every key for an empty one). */
    Cursor kv_prefix(const std::string &ns, std::string_view prefix, bool reverse = false) {
        obj_cursor *c = nullptr;
        check(obj_kv_scan(t_, detail::c_path(ns), nullptr, 0, nullptr, 0, detail::u8_bound(prefix), prefix.size(),
                          reverse, &c));
        return Cursor(c);
    }

private:
    obj_txn *t_;
};

/** obj_options with the library's defaults (obj_options_init), to change and pass to Db::open. */
inline obj_options default_options() {
    obj_options o{};
    check(obj_options_init(&o));
    return o;
}

/** An encryption key for Db::open, Db::rekey, Db::attach and restore: none
 *  (a plain database), 32 raw bytes (AES-256-GCM) or a passphrase
 *  (Argon2id; its salt and costs are kept in the file's header). */
class Key {
public:
    /** No key: a plain database (for rekey: decrypt). */
    Key() noexcept = default;
    static Key none() noexcept { return Key(); }
    /** 32 raw key bytes; any other length throws Error(OBJ_INVALID_ARGUMENT). */
    static Key raw(std::string_view bytes) {
        if (bytes.size() != 32)
            throw Error(OBJ_INVALID_ARGUMENT, "a raw encryption key is 32 bytes, not " + std::to_string(bytes.size()));
        Key k;
        k.kind_ = Kind::Raw;
        std::memcpy(k.raw_.data(), bytes.data(), 32);
        return k;
    }
    static Key raw(const std::array<uint8_t, 32> &bytes) noexcept {
        Key k;
        k.kind_ = Kind::Raw;
        k.raw_ = bytes;
        return k;
    }
    /** A passphrase; one holding a NUL byte throws Error(OBJ_INVALID_ARGUMENT)
     *  (the C API takes a NUL-terminated string). */
    static Key passphrase(std::string_view phrase) {
        if (phrase.find('\0') != std::string_view::npos)
            throw Error(OBJ_INVALID_ARGUMENT, "a passphrase cannot contain a NUL byte");
        Key k;
        k.kind_ = Kind::Passphrase;
        k.phrase_ = phrase;
        return k;
    }
    bool empty() const noexcept { return kind_ == Kind::None; }
    /** The `key` argument of the C calls: NULL unless a raw key. */
    const uint8_t *raw_data() const noexcept { return kind_ == Kind::Raw ? raw_.data() : nullptr; }
    /** The `passphrase` argument of the C calls: NULL unless a passphrase. */
    const char *passphrase_c_str() const noexcept { return kind_ == Kind::Passphrase ? phrase_.c_str() : nullptr; }

private:
    enum class Kind { None, Raw, Passphrase };
    Kind kind_ = Kind::None;
    std::array<uint8_t, 32> raw_{};
    std::string phrase_;
};

/** What Db::backup did (its JSON report, parsed; `json` keeps the text). */
struct BackupReport {
    /** Pages and bytes of the copy; when cancelled, of the pages copied before the cancel. */
    uint64_t pages = 0, bytes = 0;
    /** The commit counter of the snapshot copied: the copy holds exactly that commit. */
    uint64_t commit_counter = 0;
    /** The progress callback returned false: nothing was left at the target. */
    bool cancelled = false;
    uint64_t millis = 0;
    std::string json;
};

/** What Db::compact or Db::compact_to did. */
struct CompactReport {
    uint64_t pages_before = 0, pages_after = 0;
    /** Sizes of the main file before and of the (main or new) file after, in bytes. */
    uint64_t file_size_before = 0, file_size_after = 0;
    uint64_t commit_counter = 0;
    /** compact(): false when the database was already compact (nothing written). */
    bool rewritten = false;
    /** compact(): false when an older snapshot still open held the shrink back
     *  (the file shrinks at a later checkpoint; file_size_after is then not its size). */
    bool complete = false;
    uint64_t millis = 0;
    std::string json;
};

/** Db::compaction_estimate: the exact figures of a compaction, from a dry run. */
struct CompactionEstimate {
    uint64_t database_size = 0, file_size = 0, compacted_size = 0;
    /** Bytes a compact() would give back. */
    uint64_t reclaimable_bytes = 0;
    std::string json;
};

/** What Db::export_jsonl wrote. */
struct ExportReport {
    uint64_t collections = 0, documents = 0, kv_namespaces = 0, kv_entries = 0;
    /** Plain B+trees (made by the Rust API's create_tree) and their entries. */
    uint64_t trees = 0, tree_entries = 0;
    /** The snapshot exported. */
    uint64_t commit_counter = 0;
    std::string json;
};

/** What Db::import_jsonl loaded. */
struct ImportReport {
    uint64_t collections = 0, documents = 0, indexes_created = 0, kv_namespaces = 0, kv_entries = 0;
    /** Plain B+trees (made by the Rust API's create_tree) and their entries. */
    uint64_t trees = 0, tree_entries = 0;
    /** Write transactions committed. */
    uint64_t commits = 0;
    std::string json;
};

/** A backup's progress callback: `done` of `total` pages copied; called on
 *  the calling thread before the first page, every 256 pages and once with
 *  done == total. Return false to cancel (the backup then returns a report
 *  with `cancelled` and leaves nothing at the target). An exception thrown
 *  here cancels the backup too and is rethrown by Db::backup once the C call
 *  has returned (it never crosses the C library). */
using Progress = std::function<bool(uint64_t done, uint64_t total)>;

namespace detail {
inline BackupReport backup_report(std::string json) {
    BackupReport r;
    r.pages = report_field(json, "pages");
    r.bytes = report_field(json, "bytes");
    r.commit_counter = report_field(json, "commit_counter");
    r.cancelled = report_field(json, "cancelled") != 0;
    r.millis = report_field(json, "millis");
    r.json = std::move(json);
    return r;
}
inline CompactReport compact_report(std::string json) {
    CompactReport r;
    r.pages_before = report_field(json, "pages_before");
    r.pages_after = report_field(json, "pages_after");
    r.file_size_before = report_field(json, "file_size_before");
    r.file_size_after = report_field(json, "file_size_after");
    r.commit_counter = report_field(json, "commit_counter");
    r.rewritten = report_field(json, "rewritten") != 0;
    r.complete = report_field(json, "complete") != 0;
    r.millis = report_field(json, "millis");
    r.json = std::move(json);
    return r;
}
}  // namespace detail

/** Copies the database file `backup` (a Db::backup) to `target`, a path
 *  that must not be open (Error OBJ_BUSY) and, unless `overwrite`, must not
 *  exist (OBJ_INVALID_ARGUMENT). A damaged backup is refused
 *  (OBJ_CORRUPTION) before the target changes. An encrypted backup needs
 *  its `key` (else OBJ_ENCRYPTION), and the restored file keeps it. */
inline void restore(const std::string &backup, const std::string &target, bool overwrite = false,
                    const Key &key = Key()) {
    check(obj_db_restore_with_key(detail::c_path(backup), detail::c_path(target), overwrite, key.raw_data(),
                                  key.passphrase_c_str()));
}

/** An open database. Usable from many threads at once. */
class Db {
public:
    /** Opens (or creates) the database at `path`; `opts` may be null for defaults. */
    static Db open(const std::string &path, const obj_options *opts = nullptr) {
        obj_db *d = nullptr;
        check(obj_db_open(detail::c_path(path), opts, &d));
        return Db(d);
    }
    /** Opens an encrypted database (or creates one) with `key`, which
     *  replaces any key in `opts`; a wrong or missing key is
     *  Error(OBJ_ENCRYPTION). Key() opens a plain database. */
    static Db open(const std::string &path, const Key &key, const obj_options *opts = nullptr) {
        obj_options o = opts ? *opts : default_options();
        o.encryption_key = key.raw_data();
        o.passphrase = key.passphrase_c_str();
        return open(path, &o);
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
    // One-call reads: each in a snapshot of its own (begun and ended inside
    // the call), for a single lookup outside any transaction; as the Txn
    // calls of the same names otherwise.
    std::optional<Doc> get(const std::string &coll, uint64_t id) {
        Doc d;
        d.id = id;
        obj_bytes b = {nullptr, 0};
        bool found = false;
        check(obj_db_doc_get(d_, detail::c_path(coll), id, &b, &d.version, &found));
        if (!found) return std::nullopt;
        d.json = detail::take(b);
        return d;
    }
    std::optional<std::string> raw_get(const std::string &coll, uint64_t id) {
        obj_bytes b = {nullptr, 0};
        bool found = false;
        check(obj_db_raw_get(d_, detail::c_path(coll), id, &b, &found));
        if (!found) return std::nullopt;
        return detail::take(b);
    }
    std::optional<std::string> kv_get(const std::string &ns, std::string_view key) {
        obj_bytes b = {nullptr, 0};
        bool found = false;
        check(obj_db_kv_get(d_, detail::c_path(ns), detail::u8(key), key.size(), &b, &found));
        if (!found) return std::nullopt;
        return detail::take(b);
    }
    uint64_t count(const std::string &coll) {
        uint64_t n = 0;
        check(obj_db_count(d_, detail::c_path(coll), &n));
        return n;
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
    // Operations: backup, compaction, encryption, attach, export and import
    // (obj.h has the details of each; errors throw Error as everywhere).

    /** Closes like close() but leaves the WAL for the next open to recover
     *  (no checkpoint): for an exit on error. */
    void close_no_checkpoint() { check(obj_db_close_no_checkpoint(d_)); }

    /** Writes a consistent copy, as of one snapshot, to `path` while other
     *  threads keep reading and writing (written under a temporary name,
     *  then renamed). `progress` (may be empty) reports and can cancel; an
     *  exception it throws cancels the backup and is rethrown here. The copy
     *  of an encrypted database has the same key. Errors: OBJ_BUSY (`path`
     *  is an open database), OBJ_IO. */
    BackupReport backup(const std::string &path, const Progress &progress = nullptr) {
        detail::ProgressCall call{&progress, nullptr};
        obj_progress_fn fn = progress ? &detail::progress_trampoline : nullptr;
        obj_bytes b = {nullptr, 0};
        obj_status s = obj_db_backup(d_, detail::c_path(path), fn, &call, &b);
        if (call.error) {
            obj_bytes_free(&b);
            std::rethrow_exception(call.error);
        }
        check(s);
        return detail::backup_report(detail::take(b));
    }
    /** Shrinks the file in place, crash-safe; writers wait meanwhile
     *  (OBJ_BUSY past the busy timeout, also while this thread holds a
     *  write Txn). */
    CompactReport compact() {
        obj_bytes b = {nullptr, 0};
        check(obj_db_compact(d_, &b));
        return detail::compact_report(detail::take(b));
    }
    /** Writes a compacted copy of the current snapshot to `path` (same key). */
    CompactReport compact_to(const std::string &path) {
        obj_bytes b = {nullptr, 0};
        check(obj_db_compact_to(d_, detail::c_path(path), &b));
        return detail::compact_report(detail::take(b));
    }
    /** The exact figures of what compact() would reclaim (a dry run that
     *  reads every tree node; stat_json() gives cheap bounds). */
    CompactionEstimate compaction_estimate() {
        obj_bytes b = {nullptr, 0};
        check(obj_db_compaction_estimate(d_, &b));
        CompactionEstimate e;
        e.json = detail::take(b);
        e.database_size = detail::report_field(e.json, "database_size");
        e.file_size = detail::report_field(e.json, "file_size");
        e.compacted_size = detail::report_field(e.json, "compacted_size");
        e.reclaimable_bytes = detail::report_field(e.json, "reclaimable_bytes");
        return e;
    }
    /** Rewrites the database under `key`: encrypts a plain one, changes the
     *  key, or with Key() decrypts. Must be the only handle on the file with
     *  no transaction open and no other call in progress (else OBJ_BUSY);
     *  later opens need the new key. */
    void rekey(const Key &key) { check(obj_db_rekey(d_, key.raw_data(), key.passphrase_c_str())); }
    /** Opens the database at `path` read-only, its collections readable as
     *  "<ns>.<collection>" in transactions begun afterwards (collections
     *  only, not key-value namespaces); a write there is
     *  Error(OBJ_INVALID_ARGUMENT). `key` for an encrypted file. Errors:
     *  OBJ_NOT_FOUND (no file), OBJ_ENCRYPTION, OBJ_CORRUPTION,
     *  OBJ_INVALID_ARGUMENT (not a database; `ns` invalid or attached). */
    void attach(const std::string &path, const std::string &ns, const Key &key = Key()) {
        check(obj_db_attach_with_key(d_, detail::c_path(path), detail::c_path(ns), key.raw_data(),
                                     key.passphrase_c_str()));
    }
    /** Detaches `ns` (OBJ_NOT_FOUND if not attached); transactions already
     *  begun keep their snapshot of it. */
    void detach(const std::string &ns) { check(obj_db_detach(d_, detail::c_path(ns))); }
    /** Streams one collection (nullopt: every collection and key-value
     *  namespace) from one snapshot to the file `path` as JSON lines, in
     *  constant memory; `path` is replaced only once the export is complete.
     *  Refuses a path holding a database or its -wal/-shm file. */
    ExportReport export_jsonl(const std::string &path, const std::optional<std::string> &collection = std::nullopt) {
        obj_bytes b = {nullptr, 0};
        check(obj_db_export(d_, collection ? detail::c_path(*collection) : nullptr, detail::c_path(path), &b));
        ExportReport r;
        r.json = detail::take(b);
        r.collections = detail::report_field(r.json, "collections");
        r.documents = detail::report_field(r.json, "documents");
        r.kv_namespaces = detail::report_field(r.json, "kv_namespaces");
        r.kv_entries = detail::report_field(r.json, "kv_entries");
        r.trees = detail::report_field(r.json, "trees");
        r.tree_entries = detail::report_field(r.json, "tree_entries");
        r.commit_counter = detail::report_field(r.json, "commit_counter");
        return r;
    }
    /** Loads an export_jsonl file: collections, indexes, documents at their
     *  ids, key-value entries. `batch_size` 0 is one transaction (all or
     *  nothing), else a commit every `batch_size` lines. A malformed line is
     *  OBJ_INVALID_ARGUMENT naming it ("import line N: ..."). */
    ImportReport import_jsonl(const std::string &path, uint64_t batch_size = 0) {
        obj_bytes b = {nullptr, 0};
        check(obj_db_import(d_, detail::c_path(path), batch_size, &b));
        ImportReport r;
        r.json = detail::take(b);
        r.collections = detail::report_field(r.json, "collections");
        r.documents = detail::report_field(r.json, "documents");
        r.indexes_created = detail::report_field(r.json, "indexes_created");
        r.kv_namespaces = detail::report_field(r.json, "kv_namespaces");
        r.kv_entries = detail::report_field(r.json, "kv_entries");
        r.trees = detail::report_field(r.json, "trees");
        r.tree_entries = detail::report_field(r.json, "tree_entries");
        r.commits = detail::report_field(r.json, "commits");
        return r;
    }
    obj_db *get() const noexcept { return d_; }

private:
    obj_db *d_;
};

}  // namespace obj

#endif /* OBJ_HPP */
