"""Operating a database from Python: backup and restore, compaction,
export and import, and encryption at rest."""

import os

import pytest

import obj


def fill(db, n=500):
    db.insert_many("orders", [{"email": f"u{i}@x", "total": i, "note": "x" * 200} for i in range(n)])


def test_backup_with_progress_restore_and_refusals(tmp_path):
    src, bak, res = tmp_path / "src.obj", tmp_path / "bak.obj", tmp_path / "res.obj"
    with obj.Db(src) as db:
        fill(db)
        seen = []
        report = db.backup(bak, progress=lambda done, total: seen.append((done, total)))
        assert not report["cancelled"] and report["pages"] > 0
        assert seen and all(d <= t for d, t in seen)
        cancelled = db.backup(tmp_path / "never.obj", progress=lambda d, t: False)
        assert cancelled["cancelled"] and not (tmp_path / "never.obj").exists()
        with pytest.raises(obj.BusyError):
            obj.Db.restore(bak, src, overwrite=True)          # the open database
    obj.Db.restore(bak, res)
    with pytest.raises(obj.InvalidArgumentError):
        obj.Db.restore(bak, res)                              # exists, no overwrite
    with pytest.raises(obj.NotFoundError):
        obj.Db.restore(tmp_path / "missing.obj", res, overwrite=True)
    with obj.Db(res) as db:
        assert db.query("orders").count() == 500


def test_compact_and_export_import(tmp_path):
    with obj.Db(tmp_path / "a.obj") as db:
        fill(db, 2000)
        with db.transaction() as tx:
            for i in range(1, 1801):
                tx.delete("orders", i)
        db.checkpoint()
        before = os.path.getsize(tmp_path / "a.obj")
        report = db.compact()
        assert report["rewritten"] and report["file_size_after"] < before
        assert db.query("orders").count() == 200
        exported = db.export(tmp_path / "dump.jsonl", "orders")
        assert exported["documents"] == 200
    with obj.Db(tmp_path / "b.obj") as db:
        imported = db.import_(tmp_path / "dump.jsonl", batch_size=64)
        assert imported["documents"] == 200
        assert db.get("orders", 1801)["email"] == "u1800@x"


def test_encryption_keys_and_rekey(tmp_path):
    path = tmp_path / "secret.obj"
    with obj.Db(path, passphrase="correct horse") as db:
        db.insert("notes", {"text": "PLAINTEXT-MARKER"})
    with pytest.raises(obj.EncryptionError):
        obj.Db(path)
    with pytest.raises(obj.EncryptionError):
        obj.Db(path, passphrase="wrong")
    with pytest.raises(obj.InvalidArgumentError):
        obj.Db(path, key=b"short")
    assert b"PLAINTEXT-MARKER" not in path.read_bytes()
    key = bytes(range(32))
    with obj.Db(path, passphrase="correct horse") as db:
        db.rekey(key=key)
    with obj.Db(path, key=key) as db:
        assert db.get("notes", 1) == {"text": "PLAINTEXT-MARKER"}
        db.rekey()                                            # decrypt
    with obj.Db(path) as db:
        assert db.get("notes", 1) == {"text": "PLAINTEXT-MARKER"}


def test_encrypted_backup_compact_to_and_restore(tmp_path):
    path = tmp_path / "secret.obj"
    with obj.Db(path, passphrase="correct horse") as db:
        db.insert_many("notes", [{"text": f"PLAINTEXT-MARKER {i}"} for i in range(300)])
        report = db.backup(tmp_path / "copy.obj")
        assert not report["cancelled"]
        db.compact_to(tmp_path / "compact.obj")
        est = db.compaction_estimate()
        assert est["compacted_size"] + est["reclaimable_bytes"] >= est["database_size"]
        assert db.stat().raw["reclaimable_bytes"] <= est["reclaimable_bytes"]
    for name in ("copy.obj", "compact.obj"):
        copy = tmp_path / name
        assert b"PLAINTEXT-MARKER" not in copy.read_bytes()
        with pytest.raises(obj.EncryptionError):
            obj.Db(copy)
        with pytest.raises(obj.EncryptionError):
            obj.Db(copy, passphrase="wrong")
        with obj.Db(copy, passphrase="correct horse") as db:
            assert db.count("notes") == 300
            db.integrity_check()
    # Restore needs the key, and writes nothing without it.
    target = tmp_path / "restored.obj"
    with pytest.raises(obj.EncryptionError):
        obj.Db.restore(tmp_path / "copy.obj", target)
    assert not target.exists()
    obj.Db.restore(tmp_path / "copy.obj", target, passphrase="correct horse")
    with obj.Db(target, passphrase="correct horse") as db:
        assert db.get("notes", 1) == {"text": "PLAINTEXT-MARKER 0"}
    # A flipped bit in the last page of the compacted copy (its catalog).
    data = bytearray((tmp_path / "compact.obj").read_bytes())
    data[len(data) - 4096 + 100] ^= 0x10
    (tmp_path / "compact.obj").write_bytes(bytes(data))
    with pytest.raises((obj.CorruptionError, obj.IntegrityError)):
        with obj.Db(tmp_path / "compact.obj", passphrase="correct horse") as db:
            db.count("notes")
            db.integrity_check()


def test_exception_exit_keeps_the_wal_and_clean_exit_folds_it(tmp_path):
    """`with obj.Db(...)` left by an exception closes without the
    checkpoint (the frames stay in the -wal, recovery reads them on the
    next open) and re-raises the block's own error; a clean exit folds
    the WAL into the file and removes it."""
    p = tmp_path / "x.obj"
    wal = str(p) + "-wal"

    class Boom(Exception):
        pass

    with pytest.raises(Boom, match="the block's own error"):
        with obj.Db(p) as db:
            fill(db, 300)
            frames = db.stat().wal_frames
            assert frames > 0 and os.path.getsize(wal) > 0
            size = os.path.getsize(wal)
            raise Boom("the block's own error")
    assert db.closed
    assert os.path.getsize(wal) == size       # untouched by the close: no fold, no reset
    main_size = os.path.getsize(p)

    with obj.Db(p) as db:                     # recovery from the WAL
        assert db.count("orders") == 300
        assert db.stat().wal_frames >= frames  # still in the WAL, not folded at close
        assert sorted(d["total"] for _, d in db.all("orders")) == list(range(300))
        db.insert("orders", {"email": "late", "total": -1})
    assert not os.path.exists(wal)            # the clean exit folded and removed it
    assert os.path.getsize(p) >= main_size
    with obj.Db(p) as db:
        assert db.count("orders") == 301
        assert db.stat().wal_frames == 0


def test_exception_exit_while_a_transaction_is_open(tmp_path):
    """An error inside a write transaction inside the Db block: the
    transaction rolls back, the Db closes without a checkpoint, the
    error reaches the caller unchanged."""
    p = tmp_path / "y.obj"
    with obj.Db(p) as db:
        fill(db, 10)
    with pytest.raises(KeyError):
        with obj.Db(p) as db:
            with db.transaction() as tx:
                tx.insert("orders", {"email": "gone", "total": 1})
                raise KeyError("inner")
    with obj.Db(p) as db:
        assert db.count("orders") == 10
        assert all(d["email"] != "gone" for _, d in db.all("orders"))


def test_export_to_a_named_pipe_streams_into_it(tmp_path):
    """A FIFO a reader (a compressor, say) has open gets the lines, and
    stays a FIFO; a file renamed over it left the reader waiting forever.
    The lines load back."""
    import json
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    with obj.Db(tmp_path / "a.obj") as db:
        fill(db, 300)
        report = db.export(fifo, "orders")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    reader.join(30)
    assert not reader.is_alive() and report["documents"] == 300
    lines = got[0].decode().splitlines()
    assert len(lines) == 301 and json.loads(lines[1])["doc"]["email"] == "u0@x"
    dump = tmp_path / "dump.jsonl"
    dump.write_bytes(got[0])
    with obj.Db(tmp_path / "b.obj") as db:
        db.import_(dump)
        assert db.count("orders") == 300
