"""The ``obj`` command line (``python -m obj`` or the ``obj`` script):
inspect, check, checkpoint, dump and load, back up, restore and compact
database files.

Exit codes (stable, for scripts):
  0  success
  1  the integrity check found problems, or the file is corrupt
  2  bad usage (unknown command, missing argument)
  3  the file, collection or input does not exist
  4  the database is busy (another process holds it)
  5  any other obj error (I/O, invalid input, ...)
  6  encryption key missing or wrong (or given for a plain file)

Encrypted files: every command takes ``--key-file FILE`` (32 raw bytes, or
64 hex digits) or ``--passphrase-env NAME`` (the passphrase is the value of
that environment variable) or ``--passphrase-file FILE`` (its first line).
A passphrase is never taken on the command line, where other users of the
machine could read it in the process list.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_BUSY, EXIT_ERROR, EXIT_KEY = 0, 1, 2, 3, 4, 5, 6

_EPILOG = """exit codes: 0 ok; 1 integrity problems or corruption; 2 bad usage;
3 file/collection/input not found; 4 busy (another process holds the file);
5 other error; 6 encryption key missing or wrong.

encrypted files: --key-file FILE (32 bytes or 64 hex digits),
--passphrase-env NAME or --passphrase-file FILE, on any command.

examples:
  obj stat app.obj
  obj check app.obj
  obj dump app.obj orders > orders.jsonl
  obj load copy.obj orders < orders.jsonl
  obj backup app.obj nightly.obj
  obj compact app.obj
  OBJ_PW=... obj restore --passphrase-env OBJ_PW nightly.obj app.obj --overwrite"""


def _key(a: argparse.Namespace) -> dict:
    """The key arguments of obj.Db from the encryption options (empty for
    a plain file)."""
    import obj

    given = [x for x in (a.key_file, a.passphrase_env, a.passphrase_file) if x]
    if len(given) > 1:
        raise obj.InvalidArgumentError("give one of --key-file, --passphrase-env, --passphrase-file")
    if a.key_file:
        if not os.path.exists(a.key_file):
            raise obj.NotFoundError(f"{a.key_file}: no such key file")
        with open(a.key_file, "rb") as f:
            raw = f.read()
        if len(raw) != 32:
            try:
                raw = bytes.fromhex(raw.decode("ascii").strip())
            except (UnicodeDecodeError, ValueError):
                raw = b""
        if len(raw) != 32:
            raise obj.InvalidArgumentError(f"{a.key_file}: a key file holds 32 bytes or 64 hex digits")
        return {"key": raw}
    if a.passphrase_env:
        value = os.environ.get(a.passphrase_env)
        if not value:
            raise obj.InvalidArgumentError(f"environment variable {a.passphrase_env} is unset or empty")
        return {"passphrase": value}
    if a.passphrase_file:
        if not os.path.exists(a.passphrase_file):
            raise obj.NotFoundError(f"{a.passphrase_file}: no such passphrase file")
        with open(a.passphrase_file, "rb") as f:
            line = f.readline().rstrip(b"\r\n")
        if not line:
            raise obj.InvalidArgumentError(f"{a.passphrase_file}: the passphrase is empty")
        return {"passphrase": line}
    return {}


def _open(path: str, read_only: bool = False, a: argparse.Namespace | None = None) -> Any:
    import obj

    if not os.path.exists(path):
        raise obj.NotFoundError(f"{path}: no such file")
    return obj.Db(path, read_only=read_only, create=False, **(_key(a) if a is not None else {}))


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
        print(f"collection  {c.name}  [{c.kind}]  {c.doc_count} docs  {c.file_size_bytes} bytes")
        for i in c.indexes:
            print(f"  index     {i.name}  {i.kind}  ({', '.join(i.key_paths)})  {i.status}")
    return EXIT_OK


def cmd_check(a: argparse.Namespace) -> int:
    with _open(a.file, read_only=True, a=a) as db:
        rep = db.integrity_check()
    print(f"ok: {rep.pages} pages, {rep.trees} trees, {rep.entries} entries")
    return EXIT_OK


def cmd_checkpoint(a: argparse.Namespace) -> int:
    with _open(a.file, a=a) as db:
        r = db.checkpoint()
    print(f"backfilled {r.frames_backfilled} frames, wrote {r.pages_written} pages; "
          f"{r.wal_frames} frames left; {'complete' if r.complete else 'partial'}")
    return EXIT_OK


def cmd_dump(a: argparse.Namespace) -> int:
    import obj

    out = open(a.output, "w", encoding="utf-8") if a.output else sys.stdout
    n = 0
    try:
        with _open(a.file, read_only=True, a=a) as db:
            if a.collection not in db.collections():
                raise obj.NotFoundError(f"no collection {a.collection!r} in {a.file}")
            q: dict = {"collection": a.collection}
            if a.limit is not None:
                q["limit"] = a.limit
            with db.read_transaction() as tx:
                for doc_id, _ver, text in tx._c_json_rows(json.dumps(q).encode()):
                    line = text.decode("utf-8")
                    if a.ids:
                        line = f'{{"id":{doc_id},"doc":{line}}}'
                    out.write(line + "\n")
                    n += 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"dumped {n} documents", file=sys.stderr)
    return EXIT_OK


class _Progress:
    """A progress bar on stderr, redrawn when the percentage changes."""

    def __init__(self, total: int, enabled: bool, label: str = "loading", unit: str = "docs") -> None:
        self.total = total
        self.enabled = enabled and total > 0
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
        sys.stderr.write(f"\r{self.label} [{bar}] {pct:3d}%  {count} {self.unit}")
        sys.stderr.flush()

    def end(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def cmd_load(a: argparse.Namespace) -> int:
    import obj

    if a.input and a.input != "-":
        if not os.path.exists(a.input):
            raise obj.NotFoundError(f"{a.input}: no such file")
        src = open(a.input, "rb")
        total = os.path.getsize(a.input)
    else:
        src = sys.stdin.buffer
        total = 0
    tty = sys.stderr.isatty() and not a.quiet
    prog = _Progress(total, tty)
    n = 0
    read = 0
    with obj.Db(a.file, **_key(a)) as db:
        batch: list[bytes] = []

        def flush(tx: Any) -> None:
            nonlocal n
            if not batch:
                return
            if a.ids:
                for line in batch:
                    rec = obj._codec.loads(line)
                    if not isinstance(rec, dict) or "id" not in rec or "doc" not in rec:
                        raise obj.InvalidArgumentError('with --ids each line is {"id": N, "doc": {...}}')
                    tx.upsert(a.collection, rec["id"], rec["doc"])
            else:
                js = b"[" + b",".join(batch) + b"]"
                tx._c_doc_insert_many(tx._wname(a.collection), js, len(batch), 0)
            n += len(batch)
            batch.clear()

        with db.transaction() as tx:
            for lineno, line in enumerate(src, 1):
                read += len(line)
                line = line.strip()
                if not line:
                    continue
                batch.append(line)
                if len(batch) >= a.batch:
                    try:
                        flush(tx)
                    except obj.InvalidArgumentError as e:
                        raise obj.InvalidArgumentError(f"near line {lineno}: {e}") from None
                    prog.show(read, n)
            flush(tx)
        prog.show(total or read, n)
        prog.end()
    if src is not sys.stdin.buffer:
        src.close()
    print(f"loaded {n} documents into {a.collection}", file=sys.stderr)
    return EXIT_OK


def _show_progress(a: argparse.Namespace, label: str) -> bool:
    """A progress bar only on a terminal, and not with --quiet."""
    return sys.stderr.isatty() and not a.quiet


def cmd_backup(a: argparse.Namespace) -> int:
    bar: _Progress | None = None
    show = _show_progress(a, "backup")

    def progress(done: int, total: int) -> bool:
        nonlocal bar
        if bar is None:
            bar = _Progress(total, show, "backup", "pages")
        bar.show(done, done)
        return True

    with _open(a.file, read_only=True, a=a) as db:
        r = db.backup(a.dest, progress)
    if bar is not None:
        bar.end()
    print(f"backed up {r['pages']} pages ({r['bytes']} bytes) as of commit {r['commit_counter']} "
          f"to {a.dest} in {r['millis']} ms", file=sys.stderr)
    return EXIT_OK


def cmd_restore(a: argparse.Namespace) -> int:
    import obj

    if not os.path.exists(a.backup):
        raise obj.NotFoundError(f"{a.backup}: no such file")
    obj.Db.restore(a.backup, a.target, overwrite=a.overwrite, **_key(a))
    print(f"restored {a.backup} to {a.target}", file=sys.stderr)
    return EXIT_OK


def cmd_compact(a: argparse.Namespace) -> int:
    with _open(a.file, read_only=a.dry_run or a.to is not None, a=a) as db:
        if a.dry_run:
            e = db.compaction_estimate()
            print(f"compaction would reclaim {e['reclaimable_bytes']} bytes: "
                  f"{e['database_size']} -> {e['compacted_size']} bytes")
            return EXIT_OK
        r = db.compact_to(a.to) if a.to is not None else db.compact()
    if a.to is None and not r["rewritten"]:
        print(f"already compact: {r['file_size_after']} bytes")
    else:
        where = f" into {a.to}" if a.to is not None else ("" if r["complete"] else
                                                          " (the file shrinks when older readers finish)")
        print(f"compacted {r['pages_before']} -> {r['pages_after']} pages, "
              f"{r['file_size_before']} -> {r['file_size_after']} bytes{where} in {r['millis']} ms")
    return EXIT_OK


def _key_options(s: argparse.ArgumentParser) -> None:
    g = s.add_argument_group("encryption (for encrypted files; the key is never given on the command line)")
    g.add_argument("--key-file", metavar="FILE", help="raw key: a file of 32 bytes or 64 hex digits")
    g.add_argument("--passphrase-env", metavar="NAME", help="passphrase: the value of environment variable NAME")
    g.add_argument("--passphrase-file", metavar="FILE", help="passphrase: the first line of FILE")


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
    s = sub.add_parser("dump", help="a collection as JSON lines (the engine's JSON form, lossless)")
    s.add_argument("file")
    s.add_argument("collection")
    s.add_argument("-o", "--output", help="write to this file instead of stdout")
    s.add_argument("--ids", action="store_true", help='write {"id": N, "doc": {...}} per line')
    s.add_argument("--limit", type=int, default=None, help="at most this many documents")
    s.set_defaults(fn=cmd_dump)
    s = sub.add_parser("load", help="JSON lines into a collection (one transaction; progress bar on a terminal)")
    s.add_argument("file")
    s.add_argument("collection")
    s.add_argument("input", nargs="?", default="-", help="JSON lines file (default: stdin)")
    s.add_argument("--ids", action="store_true", help='lines are {"id": N, "doc": {...}} (upsert at that id)')
    s.add_argument("--batch", type=int, default=5000, help="documents per insert call (default 5000)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_load)
    s = sub.add_parser("backup", help="a consistent copy of a database, made while it is in use "
                                      "(progress bar on a terminal)",
                       description="Writes a consistent copy of FILE (one snapshot) to DEST while other "
                                   "processes keep using FILE. DEST is replaced atomically unless it is an "
                                   "open database; the copy of an encrypted file is encrypted with the same key.")
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
                                   "--to, writes a compacted copy instead and leaves FILE alone.")
    s.add_argument("file")
    s.add_argument("--to", metavar="DEST", help="write a compacted copy to DEST instead")
    s.add_argument("--dry-run", action="store_true", help="only say what a compaction would reclaim (exact)")
    s.set_defaults(fn=cmd_compact)
    for sp in sub.choices.values():
        _key_options(sp)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code."""
    p = build_parser()
    a = p.parse_args(argv)
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
    try:
        return a.fn(a)
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


if __name__ == "__main__":
    sys.exit(main())
