"""The ``obj`` command line (``python -m obj`` or the ``obj`` script):
inspect, check, checkpoint, dump and load (a collection, or the whole
database in the format of ``db.export``), back up, restore and compact
database files, and encrypt, decrypt or change the key of one (rekey).

Exit codes (stable, for scripts):
  0  success
  1  the integrity check found problems, or the file is corrupt or not an
     obj database (a directory, another kind of file)
  2  bad usage (unknown command, missing argument, conflicting options)
  3  the file, collection or input does not exist (or the directory of a
     file to be written)
  4  the database is busy (another process holds it)
  5  any other obj error (I/O, invalid input, ...)
  6  encryption key missing or wrong (or given for a plain file)
  130  interrupted (Ctrl-C)

Encrypted files: every command takes ``--key-file FILE`` (32 raw bytes, or
64 hex digits) or ``--passphrase-env NAME`` (the passphrase is the value of
that environment variable, all of it: a newline there is part of it) or
``--passphrase-file FILE`` (its first line), one of them at most. ``rekey``
takes the new key the same way (``--new-key-file``,
``--new-passphrase-env``, ``--new-passphrase-file``) or ``--decrypt``. A
passphrase is never taken on the command line, where other users of the
machine could read it in the process list.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import io
import json
import os
import re
import secrets
import signal
import stat
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

try:
    import fcntl
except ImportError:  # not a Unix: dumps' abandoned temporary files stay
    fcntl = None  # type: ignore[assignment]

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_BUSY, EXIT_ERROR, EXIT_KEY = 0, 1, 2, 3, 4, 5, 6
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT), as shells report it

# The first 8 bytes of every obj database file.
_DB_MAGIC = b"OBJDB\0\r\n"

_EPILOG = """exit codes: 0 ok; 1 integrity problems, corruption, or not an obj
database; 2 bad usage; 3 not found (a file, collection or input, or a new file's directory);
4 busy (another process holds the file; --busy-timeout MS waits longer); 5 other error (I/O, invalid
input); 6 encryption key missing or wrong; 130 interrupted (Ctrl-C).

encrypted files: --key-file FILE (32 bytes or 64 hex digits),
--passphrase-env NAME or --passphrase-file FILE (one of them), on any command.
rekey takes the new key as --new-key-file, --new-passphrase-env or
--new-passphrase-file, or --decrypt.

examples:
  obj stat app.obj
  obj check app.obj
  obj dump app.obj orders > orders.jsonl
  obj load copy.obj orders < orders.jsonl
  obj dump app.obj -o all.jsonl            (every collection, key-value namespace and plain tree)
  obj load copy.obj --all all.jsonl        (or: obj load copy.obj < all.jsonl)
  obj backup app.obj nightly.obj
  obj compact app.obj
  OBJ_PW=... obj rekey app.obj --new-passphrase-env OBJ_PW
  OBJ_PW=... obj restore --passphrase-env OBJ_PW nightly.obj app.obj --overwrite"""


def _open_file(path: str, mode: str, what: str) -> Any:
    """``open(path, mode)`` for a file named on the command line; a failure
    is an obj error naming the file: NotFoundError (exit 3) when it or its
    directory does not exist, IoError (exit 5) otherwise (a directory, no
    permission, ...)."""
    import obj

    try:
        return open(path, mode, encoding=None if "b" in mode else "utf-8")
    except (FileNotFoundError, NotADirectoryError) as e:
        raise obj.NotFoundError(f"{what} {path}: {e.strerror}") from None
    except OSError as e:
        raise obj.IoError(f"{what} {path}: {e.strerror or e}") from None


def _new_file_dir(path: str, what: str) -> None:
    """NotFoundError (exit 3, as for dump's output file) when the directory
    that is to hold the new file ``path`` does not exist; the library would
    report an I/O error (exit 5) naming its temporary file."""
    import obj

    d = os.path.dirname(path) or "."
    if not os.path.isdir(d):
        raise obj.NotFoundError(f"{what} {path}: No such file or directory")


class UsageError(Exception):
    """Bad usage found past argument parsing (exit 2)."""


class _Sigint:
    """Ctrl-C in a command: a KeyboardInterrupt (what was begun is undone,
    exit 130), except once a command has begun a step that cannot stop part
    way and completes whatever comes (a commit, a compaction, a rekey, a
    restore, a finished copy put in place): from then on a Ctrl-C is only
    noted, since the step's result stands and "interrupted" would tell the
    operator that the old state remains."""

    held = False
    noted = False
    exiting = False  # main() runs as the program: SIGINT stays off after it (see run())
    owner: int | None = None  # the thread whose command took SIGINT

    @classmethod
    def handler(cls, signum: int, frame: Any) -> None:
        if cls.held:
            cls.noted = True
            return
        raise KeyboardInterrupt

    @classmethod
    def install(cls) -> Any:
        """Takes SIGINT (on the main thread, where Python's own handler is
        in place; an ignored SIGINT stays ignored); returns the handler to
        put back, or None."""
        try:
            if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
                return None
            previous = signal.signal(signal.SIGINT, cls.handler)
        except ValueError:  # not the main thread: Ctrl-C is not the command's to take
            return None
        cls.held = cls.noted = False
        cls.owner = threading.get_ident()
        return previous

    @classmethod
    def mine(cls) -> bool:
        """Whether the calling thread runs the command that took SIGINT."""
        return cls.owner == threading.get_ident()


@contextlib.contextmanager
def _one_step() -> Any:
    """A step that cannot stop part way but that the command may stop after
    (an intermediate commit of ``load --commit-every``): a Ctrl-C during it
    is raised once it has completed."""
    if not _Sigint.mine():
        yield
        return
    was = _Sigint.held
    _Sigint.held = True
    try:
        yield
    finally:
        _Sigint.held = was
    # (Only once the step has completed: its own error, if any, is the one
    # to report.)
    if not was and _Sigint.noted:
        _Sigint.noted = False
        raise KeyboardInterrupt


def _last_step() -> None:
    """The command begins the step that decides its outcome: a Ctrl-C from
    now on no longer stops it (see :class:`_Sigint`)."""
    if _Sigint.mine():
        _Sigint.held = True


def _key(a: argparse.Namespace, prefix: str = "") -> dict:
    """The key arguments of obj.Db from the encryption options (empty for
    a plain file); ``prefix`` "new_" reads rekey's --new-... options."""
    import obj

    key_file = getattr(a, prefix + "key_file", None)
    passphrase_env = getattr(a, prefix + "passphrase_env", None)
    passphrase_file = getattr(a, prefix + "passphrase_file", None)
    given = [x for x in (key_file, passphrase_env, passphrase_file) if x]
    if len(given) > 1:
        o = "--" + prefix.replace("_", "-")
        raise UsageError(f"give one of {o}key-file, {o}passphrase-env, {o}passphrase-file")
    if key_file:
        with _open_file(key_file, "rb", "key file") as f:
            raw = f.read()
        size = len(raw)
        if size != 32:
            try:
                raw = bytes.fromhex(raw.decode("ascii").strip())
            except (UnicodeDecodeError, ValueError):
                raw = b""
        if len(raw) != 32:
            # (exit 6 with the other keys that cannot serve, not 5)
            raise obj.EncryptionError(f"{key_file}: a key file holds 32 bytes or 64 hex digits, not {size} bytes")
        return {"key": raw}
    if passphrase_env:
        value = os.environ.get(passphrase_env)
        if not value:
            raise obj.EncryptionError(f"environment variable {passphrase_env} is unset or empty")
        return {"passphrase": value}
    if passphrase_file:
        with _open_file(passphrase_file, "rb", "passphrase file") as f:
            line = f.readline().rstrip(b"\r\n")
        if not line:
            raise obj.EncryptionError(f"{passphrase_file}: the passphrase is empty")
        return {"passphrase": line}
    return {}


def _int_at_least(low: int, high: int | None = None) -> Any:
    """An argparse ``type``: an int of at least ``low``; anything else is
    bad usage (exit 2, the message on stderr)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {v}")
        if high is not None and v > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, not {v}")
        return v

    parse.__name__ = "int"
    return parse


def _open(path: str, read_only: bool = False, a: argparse.Namespace | None = None) -> Any:
    import obj

    if not os.path.exists(path):
        raise obj.NotFoundError(f"{path}: no such file")
    if not read_only and _is_empty_file(path):
        # A writable open would make an empty file a new database; the
        # maintenance commands work on existing ones. A read-only open
        # refuses it with the engine's own words: "not an obj database yet", or
        # a corruption error when a WAL beside it holds a database's log.
        obj.Db(path, read_only=True, create=False).close()
        raise obj.NotADatabaseError(f"{path} is empty (0 bytes): not an obj database yet")
    return obj.Db(path, read_only=read_only, create=False, **(_db_options(a) if a is not None else {}))


def _db_options(a: argparse.Namespace) -> dict:
    """The arguments of obj.Db from the options every command that opens a
    database takes: the key, and how long to wait for another process."""
    busy = getattr(a, "busy_timeout", None)
    return {**_key(a), **({"busy_timeout_ms": busy} if busy is not None else {})}


def _counted(n: int, one: str, many: str) -> str:
    """``n`` and the noun in its number: "1 document", "2 documents"."""
    return f"{n} {one if n == 1 else many}"


# The nouns the command line counts most (singular, plural), for _counted.
_DOCUMENTS = ("document", "documents")
_KV_ENTRIES = ("key-value entry", "key-value entries")


def _is_empty_file(path: str) -> bool:
    try:
        return os.path.isfile(path) and os.path.getsize(path) == 0
    except OSError:
        return False


def cmd_stat(a: argparse.Namespace) -> int:
    with _open(a.file, read_only=True, a=a) as db:
        st = db.stat()
    if a.json:
        print(json.dumps(st.raw if not st.collections else dict(st.raw, collections=[
            {"name": c.name, "kind": c.kind, "doc_count": c.doc_count, "file_size_bytes": c.file_size_bytes,
             "indexes": [{"name": i.name, "kind": i.kind, "key_paths": i.key_paths, "status": i.status}
                         for i in c.indexes]} for c in st.collections]), indent=1))
        return EXIT_OK
    r = st.raw
    print(f"file        {a.file}")
    print(f"page size   {st.page_size}")
    print(f"pages       {st.page_count} ({r.get('free_pages', 0)} free)")
    print(f"file size   {st.file_size} bytes")
    if "reclaimable_bytes" in r:
        print(f"reclaimable at least {r['reclaimable_bytes']} bytes (free pages; 'obj compact --dry-run' is exact)")
    print(f"wal frames  {st.wal_frames}")
    for c in st.collections:
        print(f"collection  {c.name}  [{c.kind}]  {_counted(c.doc_count, 'doc', 'docs')}  "
              f"{_counted(c.file_size_bytes, 'byte', 'bytes')}")
        for i in c.indexes:
            print(f"  index     {i.name}  {i.kind}  ({', '.join(i.key_paths)})  {i.status}")
    for t in r.get("trees", []):  # (a namespace is its tree "$kv/<name>", listed by name)
        name = t.get("name", "")
        if name.startswith("$kv/"):
            n = t.get("entries", 0)
            print(f"kv          {name[4:]}  [key-value]  {_counted(n, 'entry', 'entries')}")
    return EXIT_OK


def cmd_check(a: argparse.Namespace) -> int:
    with _open(a.file, read_only=True, a=a) as db:
        rep = db.integrity_check()
    print(f"ok: {_counted(rep.pages, 'page', 'pages')}, {_counted(rep.trees, 'tree', 'trees')}, "
          f"{_counted(rep.entries, 'entry', 'entries')}")
    return EXIT_OK


def cmd_checkpoint(a: argparse.Namespace) -> int:
    with _open(a.file, a=a) as db:
        r = db.checkpoint()
    print(f"backfilled {_counted(r.frames_backfilled, 'frame', 'frames')}, wrote "
          f"{_counted(r.pages_written, 'page', 'pages')}; {_counted(r.wal_frames, 'frame', 'frames')} left; "
          f"{'complete' if r.complete else 'partial'}")
    return EXIT_OK


def _descriptor_link(path: str) -> bool:
    """Whether ``path`` leads, through symbolic links, to one of the
    process's descriptors in /proc (``/dev/stdout``, ``/dev/fd/1``)."""
    p = path
    for _ in range(40):  # as many hops as the kernel follows
        parent = os.path.realpath(os.path.dirname(p) or ".")
        if parent.startswith("/proc/") and os.path.basename(parent) == "fd":
            return True
        if not os.path.islink(p):
            return False
        link = os.readlink(p)
        p = link if os.path.isabs(link) else os.path.join(os.path.dirname(p), link)
    return False


def _start_output(path: str) -> tuple[Any, str | None, str]:
    """Opens dump's output file ``path``: ``(binary file, temporary path,
    final path)``. A regular (or new) file is written as a temporary file
    beside it that :func:`_end_output` renames over it once the dump is
    complete, so a failed dump leaves it as it was; anything else (a
    device, a pipe) is written directly (temporary path None), and so is
    one of the process's descriptors (``/dev/stdout`` redirected to a log:
    appended to, not replaced). Refuses a directory and an obj database
    file."""
    import obj

    if _descriptor_link(path):
        return _open_file(path, "ab", "output file"), None, path
    try:
        st: os.stat_result | None = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        st = None  # a new file: creating the temporary file says what is wrong with its directory
    except OSError as e:
        raise obj.IoError(f"output file {path}: {e.strerror or e}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise obj.IoError(f"output file {path}: Is a directory")
    if st is not None and not stat.S_ISREG(st.st_mode):
        return _open_file(path, "wb", "output file"), None, path
    if st is not None:
        with _open_file(path, "rb", "output file") as f:
            head = f.read(len(_DB_MAGIC))
        if head == _DB_MAGIC:
            raise obj.InvalidArgumentError(f"output file {path} is an obj database: not overwriting it")
        if not os.access(path, os.W_OK):
            raise obj.IoError(f"output file {path}: Permission denied")
    # A database's -wal and -shm hold its last commits and its locks (and
    # -wal-replaced, for a moment, the WAL of a file a restore replaces),
    # whether named or reached through a symbolic link.
    target = os.path.realpath(path)  # through a symbolic link: the link stays
    for name in dict.fromkeys((path, target)):
        for suffix in ("-wal-replaced", "-wal", "-shm"):
            main = name[: -len(suffix)] if name.endswith(suffix) else None
            if main and os.path.isfile(main):
                with _open_file(main, "rb", "database") as f:
                    if f.read(len(_DB_MAGIC)) == _DB_MAGIC:
                        raise obj.InvalidArgumentError(
                            f"output file {path} belongs to the database {main}: not overwriting it"
                        )
    d, base = os.path.split(target)
    _remove_abandoned_output(d, base)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(d, f".{base}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
        except (FileNotFoundError, NotADirectoryError) as e:
            raise obj.NotFoundError(f"output file {path}: {e.strerror}") from None
        except OSError as e:
            raise obj.IoError(f"output file {path}: {e.strerror or e}") from None
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held while the dump lives; see _remove_abandoned_output
        if st is not None and hasattr(os, "fchmod"):
            os.fchmod(fd, stat.S_IMODE(st.st_mode))  # replacing a file keeps its permissions
        return os.fdopen(fd, "wb"), tmp, target
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise


def _remove_abandoned_output(d: str, base: str) -> None:
    """Removes the temporary files that killed dumps to ``base`` left in
    directory ``d``. A living dump holds a lock on its own (taken by
    :func:`_start_output`, dropped by the system when the process dies),
    so a temporary file whose lock can be taken was abandoned."""
    if fcntl is None:
        return
    ours = re.compile(rf"\.{re.escape(base)}\.[0-9a-f]{{8}}\.tmp")
    try:
        names = os.listdir(d or ".")
    except OSError:
        return
    for name in filter(ours.fullmatch, names):
        p = os.path.join(d, name)
        try:
            fd = os.open(p, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(p)
        except OSError:
            pass  # a living dump's, or not ours to remove
        finally:
            os.close(fd)


def _end_output(out: Any, tmp: str | None, target: str, ok: bool) -> None:
    """Closes dump's output file; a temporary one is renamed over the
    target when ``ok`` (the dump completed), else removed."""
    if tmp is None:
        out.close()
        return
    try:
        if ok:
            out.flush()
            os.fsync(out.fileno())
            out.close()
            _last_step()  # the complete dump goes in place
            os.replace(tmp, target)
            tmp = None
            _sync_dir(os.path.dirname(target))
        else:
            try:
                out.close()
            except OSError:  # the dump's own error is the one to report
                pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _sync_dir(d: str) -> None:
    """Makes a rename in directory ``d`` durable (as the engine does after
    its own copies): without it a power cut after exit 0 could leave the
    old file, or none. Best effort: not every file system syncs a
    directory."""
    try:
        fd = os.open(d or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def cmd_dump(a: argparse.Namespace) -> int:
    if a.collection is None and a.limit is not None:
        raise UsageError("--limit needs a COLLECTION")
    if a.output and a.output != "-":  # ("-" is stdout, as load reads "-" as stdin)
        out, tmp, target = _start_output(a.output)
    else:
        if sys.stdout is None or isinstance(sys.stdout, _ClosedStdout):  # started with it closed (`>&-`)
            raise OSError(errno.EBADF, "standard output is closed: give the dump a file with -o")
        # UTF-8 bytes whatever the terminal's encoding (as -o writes)
        sys.stdout.flush()
        out, tmp, target = sys.stdout.buffer, None, ""
    n = 0
    kv_n: int | None = None  # (a collection's dump has no key-value entries)
    tree_n = 0  # entries of plain B+trees (made through the Rust or C API)
    ok = False
    try:
        with _open(a.file, read_only=True, a=a) as db:
            if a.collection is None:  # the whole database, by db.export itself (plain B+trees included)
                counts = db.export(out)
                n, kv_n, tree_n = counts["documents"], counts["kv_entries"], counts.get("tree_entries", 0)
            elif a.limit is None and _has_collection(db, a.collection):  # one section of db.export
                n = db.export(out, a.collection)["documents"]
            else:  # (a missing collection: its error says what the name is instead)
                with db.read_transaction() as tx:
                    n = _dump_collection(tx, out, a.collection, a.limit, a.file)
        out.flush()
        ok = True
    finally:
        if a.output and a.output != "-":
            _end_output(out, tmp, target, ok)
    kv = None if kv_n is None else _counted(kv_n, *_KV_ENTRIES)
    entries = "" if kv is None else f" and {kv}"
    if tree_n:
        entries = f", {kv} and {_counted(tree_n, 'plain B+tree entry', 'plain B+tree entries')}"
    print(f"dumped {_counted(n, *_DOCUMENTS)}{entries}", file=sys.stderr)
    return EXIT_OK


def _header(h: dict) -> bytes:
    return json.dumps(h, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogateescape") + b"\n"


def _has_collection(db: Any, name: str) -> bool:
    with db.read_transaction() as tx:
        return tx.collection_info(name) is not None


def _dump_collection(tx: Any, out: Any, name: str, limit: int | None, file: str) -> int:
    """Writes one collection's section (at most ``limit`` documents) as
    db.export does (which writes it three times faster where there is no
    limit); returns how many documents it wrote."""
    import obj

    info = tx.collection_info(name)
    if info is None:
        hint = ""
        from .kv import list_namespaces

        if name in list_namespaces(tx):
            hint = f" ({name!r} is a key-value namespace, dumped with the whole file: obj dump {file})"
        raise obj.NotFoundError(f"no collection {name!r} in {file}{hint}")
    # The format of db.export (one section): a header line with the kind,
    # next id, count and index declarations, then {"id", "v", "doc"}
    # lines, so a load keeps schema versions and indexes.
    count = info.get("count", 0) if limit is None else min(info.get("count", 0), limit)
    out.write(_header({
        "obj_export": 1, "collection": name, "kind": info.get("kind", "documents"),
        "next_id": info.get("next_id", 0), "count": count,
        "indexes": [{"name": i["name"], "kind": i["kind"], "fields": i["fields"]}
                    for i in info.get("indexes", [])],
    }))
    n = 0
    q: dict = {"collection": name, "limit": count}
    for doc_id, ver, text in tx._c_json_rows(json.dumps(q).encode()):
        v = b',"v":%d' % ver if ver else b""
        out.write(b'{"id":%d%s,"doc":%s}\n' % (doc_id, v, text))
        n += 1
    return n


class _Progress:
    """A progress bar on stderr, redrawn when the percentage changes."""

    def __init__(self, total: int, enabled: bool, label: str = "loading", unit: str = "docs") -> None:
        self.total = total
        self.enabled = enabled and total > 0
        self.drawn = False
        self.last = -1
        self.label = label
        self.unit = unit

    def show(self, done: int, count: int) -> None:
        if not self.enabled:
            return
        pct = min(100, done * 100 // self.total)
        if pct == self.last:
            return
        self.last = pct
        bar = "#" * (pct // 4) + "-" * (25 - pct // 4)
        self.drawn = True  # before the write: a Ctrl-C inside it leaves a part of the bar
        sys.stderr.write(f"\r{self.label} [{bar}] {pct:3d}%  {count} {self.unit}")
        sys.stderr.flush()

    def end(self) -> None:
        """Ends the bar's line (once), so that what follows on stderr (a
        result, an error, "interrupted") starts a line of its own."""
        if self.drawn:
            sys.stderr.write("\n")
            self.drawn = False


# The parser's place in a line read alone ("line 1" is that line).
_ONE_LINE = re.compile(r"at line 1 column (\d+)")
_AT_COLUMN = r"at column \1"
# The line of a batch that obj_doc_insert_lines names in its error.
_BATCH_LINE = re.compile(r"(invalid argument: )?line (\d+): (.*)", re.S)
# A record line as dump (and db.export) writes it; other layouts are parsed.
_RECORD = re.compile(rb'^\{"id":(0|[1-9]\d{0,19})(?:,"v":(0|[1-9]\d{0,19}))?,"doc":(.*)\}$', re.S)
_VERSION_MAX = 2**32 - 1  # a schema version is a uint32_t
_ID_MAX = 2**64 - 2  # ids are uint64_t; the largest is reserved
# A batch of the load is written once it holds --batch documents or this
# many bytes of them, whichever comes first, so that large documents keep
# the load's memory bounded.
_BATCH_BYTES = 16 << 20


def _no_repeated_keys(pairs: list) -> dict:
    """An object of the input, refused if it names a key twice (as the
    engine's import refuses it; ``json`` would keep the last)."""
    d = dict(pairs)
    if len(d) != len(pairs):
        import obj

        seen: set = set()
        for k, _ in pairs:
            if k in seen:
                raise obj.InvalidArgumentError(f"duplicate key {k!r:.40}")
            seen.add(k)
    return d


def _int_or_negative_zero(text: str) -> Any:
    """``-0`` is the float -0.0, as the engine reads it (an int has no
    negative zero)."""
    return -0.0 if text == "-0" else int(text)


def _no_constant(name: str) -> Any:
    import obj

    raise obj.InvalidArgumentError(f"{name} is not JSON")


_STRICT_JSON = json.JSONDecoder(object_pairs_hook=_no_repeated_keys, parse_int=_int_or_negative_zero,
                                parse_constant=_no_constant)


def _strict_loads(data: bytes) -> Any:
    """A line of the input read as the engine's import reads it: UTF-8
    (no byte order mark inside), each key once, ``-0`` a float, no
    ``NaN``/``Infinity`` literals."""
    return _STRICT_JSON.decode(data.decode("utf-8"))


# A backslash escape of JSON text: \\uXXXX (its hex digits), or any other.
_ESCAPE = re.compile(rb"\\(?:u([0-9a-fA-F]{4})|.)", re.S)


def _explain(text: bytes) -> str | None:
    """What is wrong with a line (or a document's text) that the engine or
    the decoder refused, when it is what their messages do not say: it is
    not UTF-8, or it escapes half of a UTF-16 surrogate pair (not a
    character). None otherwise. Only called once a line is refused."""
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"not UTF-8 text (byte 0x{text[e.start]:02x}): the input must be UTF-8"
    high: Any = None  # the escape of a high surrogate waiting for its low one
    for m in _ESCAPE.finditer(text):
        cp = int(m.group(1), 16) if m.group(1) else -1
        if high is not None:
            if 0xDC00 <= cp <= 0xDFFF and m.start() == high.end():
                high = None
                continue
            break
        if 0xD800 <= cp <= 0xDBFF:
            high = m
        elif 0xDC00 <= cp <= 0xDFFF:
            high = m
            break
    if high is None:
        return None
    return (f"a lone surrogate escape {high.group(0).decode()} in a string (half of a UTF-16 pair: "
            "a high \\ud800-\\udbff escape must be followed by a low \\udc00-\\udfff one)")


def _input_bytes(v: Any, what: str) -> bytes:
    """The bytes of ``{"$bytes": "<base64>"}`` parsed from the input,
    checked as strictly as the engine's import does (base64's alphabet,
    padding optional): ``base64.b64decode`` alone skips what is not base64
    and would load a damaged line as other bytes."""
    import obj

    if not (type(v) is dict and v.keys() == {"$bytes"} and type(v["$bytes"]) is str):
        raise obj.InvalidArgumentError(f'{what} must be {{"$bytes": "<base64>"}}')
    text = v["$bytes"]
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII str
        data = None
    # Python's decoder takes unused low bits that are not zero, and padding
    # past the last block; the engine takes the one text of the bytes, with
    # none, part or all of its padding.
    canonical = None if data is None else base64.b64encode(data).decode("ascii")
    bare = None if canonical is None else canonical.rstrip("=")
    if bare is None or text.rstrip("=") != bare or len(text) > len(canonical):
        raise obj.InvalidArgumentError(f'{what}: "$bytes" is not valid base64: {text[:40]!r}')
    return data


def _record(line: bytes, keep_ids: bool) -> tuple[int, int, bytes]:
    """``(id, schema version, document JSON)`` of a ``{"id", "v", "doc"}``
    line; the version must fit a uint32_t, and the id (when ``keep_ids``:
    it is written) be 0 to 2**64-2."""
    import obj

    m = _RECORD.match(line)
    # (A document is an object: a match whose "doc" does not end as one read
    # keys after "doc", {"id":1,"doc":{...},"v":2}, and is parsed below.)
    if m and m.group(3).endswith(b"}"):
        doc_id, v, doc = int(m.group(1)), int(m.group(2) or 0), m.group(3)
    else:
        # The document stays in the engine's JSON form (its "$bytes" and
        # "$ts" objects are checked by the engine, not revived here).
        rec = _strict_loads(line)
        if not isinstance(rec, dict) or "id" not in rec or "doc" not in rec:
            raise obj.InvalidArgumentError('expected {"id": N, "v": V, "doc": {...}} (v optional)')
        extra = sorted(rec.keys() - {"id", "v", "doc"})
        if extra:  # as the engine's import refuses it: most likely a typo ("vv" for "v")
            raise obj.InvalidArgumentError(
                f'unexpected field "{extra[0]}": a document line holds "id", "v" (optional) and "doc"')
        doc_id, v = rec["id"], rec.get("v", 0)
        if type(doc_id) is not int or type(v) is not int:
            raise obj.InvalidArgumentError("id and v must be integers")
        doc = json.dumps(rec["doc"], ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    if not 0 <= v <= _VERSION_MAX:
        raise obj.InvalidArgumentError(f"schema version v {str(v)[:24]} is out of range (0 to {_VERSION_MAX})")
    if keep_ids and not 0 <= doc_id <= _ID_MAX:
        raise obj.InvalidArgumentError(f"id {str(doc_id)[:24]} is out of range (0 to {_ID_MAX})")
    return doc_id, v, doc


def _check_indexes(indexes: Any) -> list:
    """The header's index declarations, checked: a list of
    ``{"name": str, "kind": str, "fields": [str, ...]}``."""
    import obj

    if not isinstance(indexes, list):
        raise obj.InvalidArgumentError(f'the header\'s "indexes" must be a list, not {type(indexes).__name__}')
    for n, spec in enumerate(indexes, 1):
        if not (isinstance(spec, dict) and type(spec.get("name")) is str and type(spec.get("kind")) is str
                and isinstance(spec.get("fields"), list) and all(type(f) is str for f in spec["fields"])):
            raise obj.InvalidArgumentError(
                f'the header\'s index {n} must be {{"name": str, "kind": str, "fields": [str, ...]}}')
    return indexes


_COLLECTION_HEADER = frozenset(("obj_export", "collection", "kind", "next_id", "count", "indexes"))
_KV_HEADER = frozenset(("obj_export", "kv", "count"))


class _Loader:
    """Writes the input's documents into one collection of one write
    transaction. Input is a dump (header line, then id/version/doc lines:
    the collection kind, indexes and schema versions are kept) or plain
    JSON documents, one a line (version 0). With ``collection`` None the
    input is a whole-database dump: each section goes to the collection or
    key-value namespace its header names, documents at their ids."""

    def __init__(self, tx: Any, collection: str | None, keep_ids: bool) -> None:
        self.tx = tx
        self.whole = collection is None
        self.collection = collection or ""
        self.keep_ids = keep_ids or self.whole
        self.kv: Any = None  # the key-value namespace of the current section
        self.kind = "documents"
        self.header: dict | None = None
        self.expected = -1  # documents the current header announced (-1: no header)
        self.seen = 0
        self.n = 0  # documents written
        self.replaced = 0  # of them, written at an id that held a document (--ids)
        self.kv_n = 0  # key-value entries written
        self.committed = 0  # documents and entries committed (load --commit-every)
        self.batch: list[tuple[int, int, bytes, int]] = []  # (id, version, JSON, its line number)
        self.batch_bytes = 0  # the batch's input lines' length
        self.last_id: int | None = None  # the current dump section's last id

    def header_line(self, h: dict) -> None:
        import obj

        self.flush()
        self.end_section()
        self.last_id = None
        version = h.get("obj_export")
        if type(version) is int and 1 < version < 2**63:  # (beyond an i64: not a version, as for db.import_)
            raise obj.FeatureUnsupportedError(f"unsupported dump format version {version}")
        if not (type(version) is int and version == 1):  # (True and 1.0 are not 1 here, as for the engine)
            raise obj.InvalidArgumentError(f"a section header's obj_export must be 1, not {version!r:.40}")
        if self.header is None and self.seen:
            # Lines before the first header were documents of no section:
            # with --ids a section's own could silently replace them.
            raise obj.InvalidArgumentError(
                f"a section header after {self.seen} document line(s): a dump's header comes first")
        if "tree" in h and "collection" not in h and "kv" not in h:
            raise obj.InvalidArgumentError(
                "a plain B+tree section (made by the Rust API's create_tree): 'obj load' writes collections "
                "and key-value namespaces only; load this file with db.import_(path) in Python, "
                "obj_db_import in C or Db::import in Rust")
        # The fields docs/format.md allows, as db.import_ checks them.
        allowed = _KV_HEADER if "kv" in h else _COLLECTION_HEADER
        unknown = sorted(k for k in h if k not in allowed)
        if unknown:
            raise obj.InvalidArgumentError(f"unexpected field {unknown[0]!r} in a section header")
        missing = [k for k in sorted(allowed) if k not in h]
        if missing:  # (all required, as db.import_ requires them: a count is how a cut input shows)
            raise obj.InvalidArgumentError(f"a section header without {missing[0]!r} (docs/format.md lists its fields)")
        for key in ("next_id", "count"):
            if key in h and not (type(h[key]) is int and h[key] >= 0):
                raise obj.InvalidArgumentError(f"a section header's {key!r} must be a non-negative integer")
        self.kv = None
        if self.whole and type(h.get("kv")) is str and h["kv"]:
            self.header, self.kind, self.kv = h, "kv", self.tx.kv(h["kv"])
            self.kv.create()  # an empty namespace in the dump stays one
            self.expected = h["count"]  # (checked above, as every field is there)
            self.seen = 0
            return
        if "collection" not in h:
            raise obj.InvalidArgumentError("only collection sections can be loaded into a collection (a "
                                           "whole-database dump: load it without a COLLECTION)")
        if self.header is not None and not self.whole:
            raise obj.InvalidArgumentError("the input holds more than one collection (a whole-database dump: "
                                           "load it without a COLLECTION)")
        if self.whole:
            if type(h["collection"]) is not str or not h["collection"]:
                raise obj.InvalidArgumentError("a section's \"collection\" must be a non-empty string")
            self.collection = h["collection"]
        kind = h["kind"]
        if type(kind) is not str or kind not in ("documents", "raw"):
            raise obj.InvalidArgumentError(f"unknown collection kind {kind!r:.40}")
        indexes = _check_indexes(h["indexes"])
        self.header = h
        self.kind = kind
        self.expected = h["count"]
        self.seen = 0
        tx = self.tx
        tx.create_collection(self.collection, raw=self.kind == "raw")
        cname = tx._wname(self.collection)
        for spec in indexes:
            tx._c_index_create(cname, {"name": spec["name"], "kind": spec["kind"], "fields": list(spec["fields"])})
        next_id = h["next_id"]
        if self.keep_ids and next_id < 2**64:
            # Documents keep their ids, so the ids deleted before the dump
            # stay unused too, as in the dumped database.
            tx._c_raise_next_id(cname, next_id)

    def add(self, line: bytes, lineno: int = 0) -> None:
        import obj

        if self.whole and self.header is None:
            raise obj.InvalidArgumentError("a line before any section header: without a COLLECTION the input "
                                           "must be a whole-database dump ('obj dump FILE')")
        self.batch_bytes += len(line)
        if self.kv is not None:
            self.batch.append((0, 0, line, lineno))
        elif self.header is not None or self.keep_ids:
            rec = _record(line, self.keep_ids)
            if self.header is not None and self.keep_ids:
                # A dump's documents come in ascending id order
                # (docs/format.md): a repeated id would silently replace the
                # one before it.
                if self.last_id is not None and rec[0] <= self.last_id:
                    raise obj.InvalidArgumentError(
                        f"id {rec[0]} after id {self.last_id}: a section's documents come in ascending id order")
                self.last_id = rec[0]
            self.batch.append((*rec, lineno))
        else:
            self.batch.append((0, 0, line, lineno))
        self.seen += 1

    def renew(self, db: Any) -> None:
        """Commits what is written so far and goes on in a new write
        transaction (``load --commit-every``)."""
        self.flush()
        with _one_step():
            self.tx.commit()
            self.committed = self.n + self.kv_n
        self.tx = db.transaction()
        if self.kv is not None:
            self.kv = self.tx.kv(self.kv.name)

    def flush(self) -> None:
        """Writes the batch. An error names the line of the document that
        caused it (its ``line`` attribute), not the last line read."""
        import obj

        batch, tx = self.batch, self.tx
        if not batch:
            return
        lineno = 0
        text = b""  # the text at fault, for _explain
        written = 0  # documents (or entries) the engine wrote
        try:
            if self.kv is not None:
                for _, _, text, lineno in batch:  # noqa: B007 - lineno names the line an error is in
                    rec = _strict_loads(text)
                    if not (isinstance(rec, dict) and rec.keys() == {"key", "value"}):
                        raise obj.InvalidArgumentError(
                            'a key-value section\'s lines hold {"key": {"$bytes": ...}, "value": {"$bytes": ...}}')
                    self.kv.put(_input_bytes(rec["key"], "a key"), _input_bytes(rec["value"], "a value"))
                self.kv_n += len(batch)
                batch.clear()
                self.batch_bytes = 0
                return
            cname = tx._wname(self.collection)
            if self.kind == "raw":
                for doc_id, _v, text, lineno in batch:  # noqa: B007 - as above
                    data = _input_bytes(_strict_loads(text), "a raw collection's document")
                    if self.keep_ids:
                        self.replaced += not tx._c_raw_upsert(cname, doc_id, data)
                    else:
                        tx._c_raw_insert(cname, data)
                    written += 1
            elif self.keep_ids:
                for doc_id, v, text, lineno in batch:  # noqa: B007 - as above
                    self.replaced += not tx._c_doc_upsert(cname, doc_id, text, v)
                    written += 1
            else:
                i = 0
                while i < len(batch):  # one call per run of documents of one version
                    v = batch[i][1]
                    j = i
                    while j < len(batch) and batch[j][1] == v:
                        j += 1
                    written += self._insert_run(cname, batch[i:j])
                    i = j
        except (obj.InvalidArgumentError, obj.FeatureUnsupportedError) as e:
            if getattr(e, "line", None):  # (from _insert_run: it named the line)
                raise
            if lineno:
                e.line = lineno  # type: ignore[attr-defined]
            why = _explain(text)
            if why is None:
                raise
            err = obj.InvalidArgumentError(why)
            err.line = lineno  # type: ignore[attr-defined]
            raise err from None
        except (obj.ObjError, OSError):
            raise
        except Exception as e:  # noqa: BLE001 - a line the decoder refused (bad JSON, bad base64)
            err = obj.InvalidArgumentError(_explain(text) or f"{type(e).__name__}: {e}")
            if lineno:
                err.line = lineno  # type: ignore[attr-defined]
            raise err from None
        self.n += written
        batch.clear()
        self.batch_bytes = 0

    def _insert_run(self, cname: bytes, run: list[tuple[int, int, bytes, int]]) -> int:
        """Inserts the documents of ``run`` (lines of one schema version);
        returns how many the engine wrote: one a line (the engine checks
        that each line holds exactly one document), or an error names the
        line at fault."""
        import obj

        try:
            ids = self.tx._c_doc_insert_lines(cname, b"\n".join(d for _, _, d, _n in run), len(run), run[0][1])
        except (obj.InvalidArgumentError, obj.FeatureUnsupportedError) as e:
            # The call wrote nothing. Its error names the batch's line at
            # fault: name the input's line (with what _explain says of its
            # text). An error that names none is found by inserting one at
            # a time (the transaction is rolled back all the same).
            m = _BATCH_LINE.fullmatch(str(e))
            if m is None or not 0 < int(m[2]) <= len(run):
                self._insert_each(cname, run)
                raise
            _, _, text, lineno = run[int(m[2]) - 1]
            self._name_line(type(e)((m[1] or "") + m[3]), text, lineno)
        if len(ids) != len(run):  # (the engine checks this itself: never expected)
            err = obj.InvalidArgumentError(f"the engine wrote {len(ids)} document(s) for {len(run)} lines")
            err.line = run[0][3]  # type: ignore[attr-defined]
            raise err
        return len(ids)

    def _insert_each(self, cname: bytes, run: list[tuple[int, int, bytes, int]]) -> None:
        """Inserts the documents of ``run`` one at a time, to find the one
        a batch refused with an error that names no line: its error names
        its line."""
        import obj

        tx = self.tx
        for _, v, doc, lineno in run:
            try:
                tx._c_doc_insert(cname, doc, v)
            except (obj.ConstraintError, obj.InvalidArgumentError, obj.FeatureUnsupportedError) as e:
                self._name_line(e, doc, lineno)

    @staticmethod
    def _name_line(e: Exception, text: bytes, lineno: int) -> None:
        """Raises ``e`` (or what :func:`_explain` says of ``text``) naming
        line ``lineno``."""
        import obj

        why = _explain(text)
        err = e if why is None else obj.InvalidArgumentError(why)
        err.line = lineno  # type: ignore[attr-defined]
        raise err from None

    def end_section(self) -> None:
        import obj

        if self.expected >= 0 and self.seen != self.expected:
            what = _KV_ENTRIES if self.kind == "kv" else _DOCUMENTS
            why = " (truncated input?)" if self.seen < self.expected else ""
            raise obj.InvalidArgumentError(
                f"the dump's header announced {_counted(self.expected, *what)} but {self.seen} followed{why}"
            )
        self.expected = -1


def cmd_load(a: argparse.Namespace) -> int:
    if a.collection == "-":  # "-" is stdin, the INPUT, wherever it stands
        if a.input is not None:
            raise UsageError("'-' (stdin) is the INPUT: give the COLLECTION before it")
        a.input, a.collection = "-", None
    if a.all:  # `load FILE --all [INPUT]`: the one word after FILE is the input
        if a.collection is not None and a.input is not None:
            raise UsageError("--all takes no COLLECTION (the whole database is loaded)")
        a.input, a.collection = a.input or a.collection, None
    if a.collection is not None:
        if a.input is None and _meant_as_input(a.collection):
            # `obj load copy.obj all.jsonl`: the dump meant as the input
            # would name the collection, and stdin be read (on a terminal:
            # waited for).
            raise UsageError(f"{a.collection!r} is a file, here taken as the COLLECTION, and no INPUT is given: "
                             f"a whole-database dump loads with 'obj load {a.file} --all {a.collection}', a "
                             f"collection with 'obj load {a.file} COLLECTION {a.collection}' (or give '-' as "
                             f"INPUT to read stdin into collection {a.collection!r})")
        _check_collection_name(a.collection)
    if a.input and a.input != "-":
        src = _open_file(a.input, "rb", "input file")
        total = os.fstat(src.fileno()).st_size
    else:
        if sys.stdin is None:  # started with standard input closed (`<&-`)
            raise OSError(errno.EBADF, "standard input is closed: give the load an INPUT file")
        src = sys.stdin.buffer
        total = 0
        try:  # stdin redirected from a file: its size is known
            st = os.fstat(src.fileno())
            if stat.S_ISREG(st.st_mode):
                total = max(st.st_size - os.lseek(src.fileno(), 0, os.SEEK_CUR), 0)
        except (OSError, AttributeError, ValueError):  # io.UnsupportedOperation is both
            pass
    prog = _Progress(total, _show_progress(a))
    # A load that fails leaves no database behind where there was none
    # (nor its -wal and -shm files), unless --commit-every committed part
    # of it: that part stays, as it would in an existing database.
    # (Through a dangling symbolic link: the file it names, and that file's -wal and -shm.)
    real = os.path.realpath(a.file)
    created = [] if os.path.lexists(real) else [
        p for p in (real, real + "-wal", real + "-shm") if not os.path.lexists(p)]
    committed: list[int] = [0]
    try:
        ld = _load(a, src, prog, total, committed)
    except BaseException:
        for p in created if not committed[0] else []:
            try:
                os.unlink(p)
            except OSError:
                pass
        if committed[0]:
            # (before the error's own line, which main prints)
            what = _counted(committed[0], "document or entry", "documents and entries")
            print(f"obj: {what} committed before the error (--commit-every) "
                  f"stay in {a.file}", file=sys.stderr)
        raise
    finally:
        prog.end()
        if src is not sys.stdin.buffer:
            src.close()
    # (--ids: a document at an id that held one replaced it, one loaded
    # before it from the input included.)
    replaced = f" ({ld.replaced} of them replaced a document with the same id)" if ld.replaced else ""
    if a.collection is not None:
        print(f"loaded {_counted(ld.n, *_DOCUMENTS)} into {a.collection}{replaced}", file=sys.stderr)
    else:
        kv = _counted(ld.kv_n, *_KV_ENTRIES)
        print(f"loaded {_counted(ld.n, *_DOCUMENTS)}{replaced} and {kv} into {a.file}", file=sys.stderr)
    return EXIT_OK


def _meant_as_input(name: str) -> bool:
    """Whether the COLLECTION ``name`` of a load given no INPUT is most
    likely the input file, --all forgotten: it is an existing file, and it
    is a dump (its first line a section header) or stdin is a terminal
    (nothing is on its way there). A file that merely has the collection's
    name, its input piped in, is not."""
    if not os.path.isfile(name):
        return False
    try:
        if sys.stdin is not None and sys.stdin.isatty():
            return True
        with open(name, "rb") as f:
            head = f.readline(1 << 16)
    except (OSError, ValueError):  # (ValueError: a closed stdin)
        return False
    # (A header's keys may come in any order: after `jq -S`, say.)
    return b'"obj_export"' in head and head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"{")


def _check_collection_name(name: str) -> None:
    """Refuses, before any input is read or any file created, a collection
    name the engine would refuse at the first document (1 to 200 bytes
    without '/' or NUL, docs/format.md). A name that is an existing file was
    most likely meant as the input of a whole-database load: say so."""
    import obj

    size = len(name.encode("utf-8", "surrogatepass"))
    if 1 <= size <= 200 and "/" not in name and "\0" not in name:
        return
    hint = f" (a whole-database dump loads with --all: obj load FILE --all {name})" if os.path.isfile(name) else ""
    raise obj.InvalidArgumentError(f"collection name {name!r} is invalid: 1 to 200 bytes without '/' or NUL{hint}")


def _numbered(src: Any) -> Iterator[tuple[int, bytes]]:
    """``enumerate(src, 1)``, but running out of memory while reading a line
    (one too long for memory: /dev/zero, a binary file) is an error that
    names it."""
    n = 0
    lines = iter(src)
    while True:
        try:
            line = next(lines)
        except StopIteration:
            return
        except MemoryError:
            import obj

            e = obj.InvalidArgumentError("out of memory reading it (a line too long for memory?)")
            e.line = n + 1  # type: ignore[attr-defined]  # (as the engine's errors carry it)
            raise e from None
        n += 1
        yield n, line


_LOAD_DIRTY_BYTES = 16 << 20


def _load(a: argparse.Namespace, src: Any, prog: _Progress, total: int, done: list[int]) -> _Loader:
    """The load itself: every line of ``src`` into the collection, in one
    transaction of the database (created when missing), or in one every
    ``--commit-every`` documents (``done[0]``: how many are committed so
    far); closed on return."""
    import obj

    read = 0
    line = b""  # (for the error of a failure before the first line is read)
    _new_file_dir(a.file, "database")
    # Closed as after a success whatever the outcome: the failed part was
    # rolled back, and a clean close leaves no -wal or -shm file behind.
    # One transaction holds what it changed in memory up to max_dirty_bytes
    # (64 MiB by default) before it spills to the WAL: a load gains nothing
    # from holding more than the engine's own import does (16 MiB), and
    # its memory stays flat whatever the input's size.
    with contextlib.closing(obj.Db(a.file, max_dirty_bytes=_LOAD_DIRTY_BYTES, **_db_options(a))) as db:
        ld = _Loader(db.transaction(), a.collection, a.ids)
        with contextlib.ExitStack() as ending:
            ending.callback(lambda: ld.tx.close())  # rolls back what is not committed
            lineno = 0
            try:
                for lineno, line in _numbered(src):  # noqa: B007 - named in the error below
                    read += len(line)
                    if line.startswith(b"\xef\xbb\xbf"):
                        if lineno != 1:  # (json.loads would take it anywhere; the engine's import does not)
                            raise obj.InvalidArgumentError("a byte order mark starts this line: only the "
                                                           "first line of the input may have one")
                        line = line[3:]  # an editor's byte order mark, as the engine's import skips it
                    line = line.strip()
                    if not line:
                        continue
                    # A section header: an object with the key "obj_export",
                    # its keys in any order.
                    if b'"obj_export"' in line and not _RECORD.match(line):
                        h = _strict_loads(line)
                        if isinstance(h, dict) and "obj_export" in h:
                            ld.header_line(h)
                            continue
                    ld.add(line, lineno)
                    # A commit falls every N documents exactly, whatever the
                    # batch size: the batch is written early to reach it.
                    due = a.commit_every and ld.n + ld.kv_n + len(ld.batch) - done[0] >= a.commit_every
                    if len(ld.batch) >= a.batch or ld.batch_bytes >= _BATCH_BYTES or due:
                        ld.flush()
                        prog.show(read, ld.n)
                        if due:
                            try:  # bounded memory: commit, go on in a new transaction
                                ld.renew(db)
                            finally:
                                done[0] = ld.committed  # documents and entries committed so far
                ld.flush()
                ld.end_section()
                _last_step()  # the commit completes, and so does the load
                ld.tx.commit()
            except (obj.InvalidArgumentError, obj.FeatureUnsupportedError) as e:
                at = getattr(e, "line", None)
                # (The parser read the one line alone: its "line 1" is that line.)
                raise type(e)(f"line {at or lineno}: {_ONE_LINE.sub(_AT_COLUMN, str(e))}") from None
            except (obj.ObjError, OSError):
                raise  # the database's or the input's own failure (busy, I/O, ...): main reports it
            except MemoryError:  # (storing the batch that holds the line; reading one: _numbered)
                raise obj.InvalidArgumentError(f"line {lineno}: out of memory") from None
            except Exception as e:  # noqa: BLE001 - bad input no check above caught: one line, no traceback
                why = _explain(line) or f"{type(e).__name__}: {e}"
                raise obj.InvalidArgumentError(f"line {lineno}: {why}") from None
        prog.show(total or read, ld.n)
    return ld  # (cmd_load ends the bar, whatever the outcome)


def _show_progress(a: argparse.Namespace) -> bool:
    """A progress bar only on a terminal, and not with --quiet."""
    return sys.stderr is not None and sys.stderr.isatty() and not a.quiet


def cmd_backup(a: argparse.Namespace) -> int:
    bar: _Progress | None = None
    show = _show_progress(a)

    def progress(done: int, total: int) -> bool:
        nonlocal bar
        if bar is None:
            bar = _Progress(total, show, "backup", "pages")
        bar.show(done, done)
        if done >= total:
            _last_step()  # every page is copied: the copy is synced and put in place
        return True

    try:
        with _open(a.file, read_only=True, a=a) as db:
            _new_file_dir(a.dest, "backup file")
            r = db.backup(a.dest, progress)
    finally:
        if bar is not None:
            bar.end()
    print(f"backed up {r['pages']} pages ({r['bytes']} bytes) as of commit {r['commit_counter']} "
          f"to {a.dest} in {r['millis']} ms", file=sys.stderr)
    return EXIT_OK


def cmd_restore(a: argparse.Namespace) -> int:
    import obj

    if not os.path.exists(a.backup):
        raise obj.NotFoundError(f"{a.backup}: no such file")
    _new_file_dir(a.target, "target file")
    key = _key(a)
    try:
        _last_step()  # a restore puts the whole copy in place, or nothing
        obj.Db.restore(a.backup, a.target, overwrite=a.overwrite, **key)
    except obj.InvalidArgumentError as e:
        if "(pass overwrite=True" not in str(e):
            raise
        # The engine's wording names its option; here it is a flag.
        raise obj.InvalidArgumentError(f"{a.target} already exists (pass --overwrite to replace it)") from None
    print(f"restored {a.backup} to {a.target}", file=sys.stderr)
    return EXIT_OK


def cmd_compact(a: argparse.Namespace) -> int:
    with _open(a.file, read_only=a.dry_run or a.to is not None, a=a) as db:
        if a.to is not None:
            _new_file_dir(a.to, "compacted copy")
        if a.dry_run:
            e = db.compaction_estimate()
            print(f"compaction would reclaim {e['reclaimable_bytes']} bytes: "
                  f"{e['database_size']} -> {e['compacted_size']} bytes")
            return EXIT_OK
        _last_step()  # a compaction (or its copy) completes, or leaves the file as it was
        r = db.compact_to(a.to) if a.to is not None else db.compact()
    if a.to is None and not r["rewritten"]:
        print(f"already compact: {r['file_size_after']} bytes")
    else:
        where = f" into {a.to}" if a.to is not None else ("" if r["complete"] else
                                                          " (the file shrinks when older readers finish)")
        print(f"compacted {r['pages_before']} -> {r['pages_after']} pages, "
              f"{r['file_size_before']} -> {r['file_size_after']} bytes{where} in {r['millis']} ms")
    return EXIT_OK


def cmd_rekey(a: argparse.Namespace) -> int:
    new = {} if a.decrypt else _key(a, "new_")
    with _open(a.file, a=a) as db:
        if a.decrypt and not _key(a):
            # It opened without a key: it is not encrypted.
            print(f"{a.file} is not encrypted: nothing to do", file=sys.stderr)
            return EXIT_OK
        _last_step()  # a rekey puts the whole new file in place, or nothing
        db.rekey(**new)
    print(f"{'decrypted' if a.decrypt else 'encrypted with the new key'}: {a.file}", file=sys.stderr)
    return EXIT_OK


def _key_options(s: argparse.ArgumentParser, title: str = "encryption (for encrypted files") -> None:
    g = s.add_argument_group(f"{title}; the key is never given on the command line; one of these)")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--key-file", metavar="FILE", help="raw key: a file of 32 bytes or 64 hex digits")
    x.add_argument("--passphrase-env", metavar="NAME",
                   help="passphrase: the whole value of environment variable NAME (a newline included)")
    x.add_argument("--passphrase-file", metavar="FILE",
                   help="passphrase: the first line of FILE (without its line ending)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="obj", description="Inspect and maintain obj database files.",
                                epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="store_true", help="print the package and library versions")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    s = sub.add_parser("stat", help="sizes, counters, collections and indexes")
    s.add_argument("file")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(fn=cmd_stat)
    s = sub.add_parser("check", help="integrity check (exit 1 on problems)")
    s.add_argument("file")
    s.set_defaults(fn=cmd_check)
    s = sub.add_parser("checkpoint", help="fold the write-ahead log into the main file")
    s.add_argument("file")
    s.set_defaults(fn=cmd_checkpoint)
    s = sub.add_parser("dump", help="a collection, or the whole database, as JSON lines (the format of "
                                    "db.export: lossless, with schema versions and index declarations)")
    s.add_argument("file")
    s.add_argument("collection", nargs="?", help="the collection (default: the whole database, every collection, "
                                                 "key-value namespace and plain tree, as db.export writes it)")
    s.add_argument("-o", "--output", help="write to this file instead of stdout ('-': stdout)")
    s.add_argument("--ids", action="store_true", help="(ids are always written; kept for old scripts)")
    s.add_argument("--limit", type=_int_at_least(0), default=None, help="at most this many documents (0 or more)")
    s.set_defaults(fn=cmd_dump, late_collection=True)
    s = sub.add_parser("load", help="a dump (or plain JSON documents, one a line) into a collection, "
                                    "or a whole-database dump (one transaction; progress bar on a terminal)")
    s.add_argument("file")
    s.add_argument("collection", nargs="?", help="the collection (default: a whole-database dump, from 'obj dump "
                                                 "FILE', read from stdin: every section, documents at their ids)")
    s.add_argument("input", nargs="?", default=None, help="JSON lines file (default: stdin); may follow the options")
    s.add_argument("--all", action="store_true", help="load a whole-database dump from INPUT: "
                                                      "'obj load FILE --all INPUT' (no COLLECTION)")
    s.add_argument("--ids", action="store_true", help='keep the ids of a dump (or of {"id": N, "doc": {...}} '
                                                      'lines, which without a header line or this are '
                                                      'documents as they stand): upsert at that id')
    s.add_argument("--batch", type=_int_at_least(1), default=5000,
                   help="documents per insert call (default 5000; a call also ends at 16 MB of them)")
    s.add_argument("--commit-every", type=_int_at_least(1), default=None, metavar="N",
                   help="commit every N documents (default: one transaction, all or nothing; its "
                        "memory is bounded either way; with this a failed load keeps what was committed, "
                        "in a new database too, and the WAL stays smaller)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_load, late_input=True)
    s = sub.add_parser("backup", help="a consistent copy of a database, made while it is in use "
                                      "(progress bar on a terminal)",
                       description="Writes a consistent copy of FILE (one snapshot) to DEST while other "
                                   "processes keep using FILE. DEST is replaced atomically unless it is an "
                                   "open database or one not closed cleanly (its -wal may hold commits: open and "
                                   "close it first); the copy of an encrypted file is encrypted with the same key.")
    s.add_argument("file")
    s.add_argument("dest")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_backup)
    s = sub.add_parser("restore", help="copy a backup into place (the target must not be open)",
                       description="Copies the database file BACKUP to TARGET, which must not be open in any "
                                   "process (exit 4) and, without --overwrite, must not exist (exit 5).")
    s.add_argument("backup")
    s.add_argument("target")
    s.add_argument("--overwrite", action="store_true", help="replace an existing TARGET")
    s.set_defaults(fn=cmd_restore)
    s = sub.add_parser("compact", help="shrink the file (crash-safe), or write a compacted copy",
                       description="Rewrites FILE into the fewest pages and truncates it, crash-safe; with "
                                   "--to, writes a compacted copy instead and leaves FILE alone (DEST is replaced as "
                                   "by backup).")
    s.add_argument("file")
    s.add_argument("--to", metavar="DEST", help="write a compacted copy to DEST instead")
    s.add_argument("--dry-run", action="store_true", help="only say what a compaction would reclaim (exact)")
    s.set_defaults(fn=cmd_compact)
    s = sub.add_parser("rekey", help="encrypt, decrypt or change the key of a database (it must not be open)",
                       description="Rewrites FILE under a new key: encrypts a plain file, changes the key of an "
                                   "encrypted one (give its current key with --key-file, --passphrase-env or "
                                   "--passphrase-file), or decrypts it (--decrypt). Give exactly one of the "
                                   "--new-... options or --decrypt. FILE must not be open in any process (exit "
                                   "4); a wrong current key is exit 6.")
    s.add_argument("file")
    g = s.add_argument_group("the new key (exactly one of these)")
    x = g.add_mutually_exclusive_group(required=True)
    x.add_argument("--new-key-file", metavar="FILE", help="raw key: a file of 32 bytes or 64 hex digits")
    x.add_argument("--new-passphrase-env", metavar="NAME",
                   help="passphrase: the whole value of environment variable NAME (a newline included)")
    x.add_argument("--new-passphrase-file", metavar="FILE",
                   help="passphrase: the first line of FILE (without its line ending)")
    x.add_argument("--decrypt", action="store_true", help="no new key: store the database unencrypted")
    s.set_defaults(fn=cmd_rekey)
    for name, sp in sub.choices.items():
        if name not in ("restore", "rekey"):  # (they refuse a file another process holds, without waiting)
            sp.add_argument("--busy-timeout", type=_int_at_least(0, 2**64 - 1), default=None, metavar="MS",
                            help="wait up to MS milliseconds for another process's lock before exit code 4 "
                                 "(default 5000; a Ctrl-C takes effect when the wait ends)")
        if name == "rekey":
            _key_options(sp, "the current key (of an encrypted file")
        else:
            _key_options(sp)
        # Words left over are reported with the command's usage, not the
        # top level's (see `main`).
        sp.set_defaults(command_parser=sp)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code."""
    if sys.stderr is None:
        # Started with standard error closed (`2>&-`): print(file=None)
        # would write the messages into standard output, a dump's data.
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the process's life
    p = build_parser()
    a, extra = p.parse_known_args(argv)
    if extra:
        error = getattr(a, "command_parser", p).error
        # argparse gives the optional positionals (load's COLLECTION and
        # INPUT) their defaults when options come between them and the
        # required one (`obj load db -q coll in.jsonl`, `obj load db coll
        # --ids in.jsonl`): the words left over fill them in order ("-",
        # stdin, is always the INPUT).
        words = [w for w in extra if w == "-" or not w.startswith("-")]
        if getattr(a, "late_collection", False) and len(words) == len(extra) == 1 and a.collection is None:
            # dump's COLLECTION after an option (`obj dump db -o out.jsonl orders`)
            a.collection = words[0]
            words = extra = []
        elif not getattr(a, "late_input", False) or len(words) != len(extra):
            error(f"unrecognized arguments: {' '.join(extra)}")
        for w in words:
            if w != "-" and a.collection is None and a.input is None:
                a.collection = w
            elif a.input is None:
                a.input = w
            else:
                error(f"unrecognized arguments: {' '.join(extra)}")
    if a.version:
        import obj

        print(f"obj-db {obj.__version__} (libobj {obj.library_version()})")
        return EXIT_OK
    if not getattr(a, "fn", None):
        p.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        import obj
    except ImportError as e:
        print(f"obj: {e}", file=sys.stderr)
        return EXIT_ERROR
    restore = _Sigint.install()
    # Text on stdout (stat's names, ...) that its encoding cannot show is
    # escaped, as Python does on stderr, not a UnicodeEncodeError (exit 1);
    # byte-exact output (dump) goes to its buffer, as UTF-8.
    errors = getattr(sys.stdout, "errors", None)
    if errors not in (None, "backslashreplace") and callable(getattr(sys.stdout, "reconfigure", None)):
        sys.stdout.reconfigure(errors="backslashreplace")
    else:
        errors = None
    try:
        code = a.fn(a)
        if restore is not None and _Sigint.noted:
            print(f"obj: {a.cmd}: Ctrl-C came during its last step, which cannot stop part way: "
                  "it completed", file=sys.stderr)
        return code
    except UsageError as e:
        print(f"obj: {a.cmd}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except obj.EncryptionError as e:
        print(f"obj: {a.cmd}: {e}", file=sys.stderr)
        return EXIT_KEY
    except (obj.IntegrityError, obj.CorruptionError) as e:
        print(f"obj: {a.cmd}: {e}", file=sys.stderr)
        return EXIT_PROBLEMS
    except obj.NotFoundError as e:
        print(f"obj: {a.cmd}: {e}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except obj.BusyError as e:
        print(f"obj: {a.cmd}: {e}", file=sys.stderr)
        return EXIT_BUSY
    except obj.ObjError as e:
        print(f"obj: {a.cmd}: {e}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:  # Ctrl-C: what was begun is undone (load, dump -o); one line, no traceback
        print(f"obj: {a.cmd}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:  # a file of the command line failing past its opening (a full disk, ...)
        where = f"{e.filename}: " if e.filename else ""
        print(f"obj: {a.cmd}: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_NOT_FOUND if isinstance(e, FileNotFoundError) else EXIT_ERROR
    finally:
        if errors is not None:
            try:
                sys.stdout.reconfigure(errors=errors)
            except (OSError, ValueError):  # a closed stdout (a broken pipe): nothing more is written
                pass
        if restore is not None:
            # Run as the program (run()), the outcome is decided: a Ctrl-C
            # between here and the exit must not end the process by SIGINT
            # (status 130, "interrupted") after the work is done.
            signal.signal(signal.SIGINT, signal.SIG_IGN if _Sigint.exiting else restore)
            _Sigint.held = False
            _Sigint.owner = None


def run() -> int:
    """The program ``obj`` (and ``python -m obj``): :func:`main`, after which
    the process only exits."""
    _Sigint.exiting = True
    if sys.stdout is None:  # started with standard output closed (`>&-`)
        sys.stdout = _ClosedStdout()
    try:
        code = main()
    except SystemExit as e:  # argparse: --help, a usage error
        code = e.code
    except BrokenPipeError:  # (--version's line, printed before main's handlers)
        code = EXIT_OK
    except OSError as e:
        print(f"obj: {e.strerror or e}", file=sys.stderr)
        code = EXIT_ERROR
    return _end_stdout(code)


class _ClosedStdout(io.TextIOBase):
    """Standard output when the process started with it closed: it takes
    text (print() to None would drop it unseen) and remembers that some
    came, which makes a command that succeeded exit 5, as ``cat >&-``
    fails."""

    written = False

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self.written = self.written or bool(s)
        return len(s)


def _end_stdout(code: Any) -> Any:
    """Flushes standard output while the exit code can still tell: text
    left in its buffer (stat's lines, the rest of a dump after a write
    failed) would otherwise be flushed by the interpreter at exit, which on
    a reader gone (``| head``) or a full disk prints "Exception ignored ...
    BrokenPipeError" and exits 120. A reader gone is exit ``code`` (0 for a
    command that succeeded, as ``head`` wants); another failure is exit 5
    unless the command failed already (and said why). Either way standard
    output then goes to /dev/null, so that the final flush has nothing to
    fail on."""
    out = sys.stdout
    if out is None:
        return code
    if isinstance(out, _ClosedStdout):
        if out.written and not code:
            print("obj: standard output is closed: what the command printed was lost", file=sys.stderr)
            return EXIT_ERROR
        return code
    try:
        out.flush()
        return code
    except BrokenPipeError:
        pass
    except OSError as e:
        if not code:
            print(f"obj: standard output: {e.strerror or e}", file=sys.stderr)
            code = EXIT_ERROR
    except ValueError:  # (closed)
        return code
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(fd, out.fileno())
        finally:
            os.close(fd)
    except (OSError, ValueError, AttributeError):
        pass
    return code


if __name__ == "__main__":
    sys.exit(run())
