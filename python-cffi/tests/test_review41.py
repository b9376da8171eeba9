"""Session 41: behaviour found by this session's helpers and reviews."""

from dataclasses import dataclass

import pytest

import obj


@obj.document(collection="counted", version=1)
@dataclass
class V1:
    n: int


decodes = []


@obj.document(collection="counted", version=2)
@dataclass
class V2:
    n: int

    @classmethod
    def migrate(cls, doc, from_version):
        decodes.append(doc["n"])
        return doc


def test_ids_do_not_decode_the_documents(tmp_path):
    with obj.Db(str(tmp_path / "ids.obj")) as db:
        db.insert_many([V1(i) for i in range(50)])
        decodes.clear()
        q = db.query(V2).where(obj.field("n") >= 10).sort_by("-n").offset(5).limit(20)
        ids = q.ids()
        assert decodes == []  # the version-1 documents were never migrated
        assert ids == [i for i, _ in q.fetch()] == list(range(45, 25, -1))
        assert len(decodes) == 20
        assert db.query("counted").ids() == list(range(1, 51))
        with db.read_transaction() as tx:
            assert tx.query(V2).limit(3).ids() == [1, 2, 3]
        # a Python predicate or sort key still decodes, and still agrees
        decodes.clear()
        assert db.query(V2).filter(lambda d: d.n % 2 == 0).limit(3).ids() == [1, 3, 5]
        assert decodes
        assert db.query("missing").ids() == []


def test_a_document_class_declared_again_is_refused_and_a_subclass_is_the_way(tmp_path):
    from dataclasses import dataclass as dc

    @obj.document(collection="orders41")
    @dc
    class Order:
        n: int

    with pytest.raises(obj.InvalidArgumentError, match="already the document class of collection 'orders41'"):
        obj.document(collection="orders41_backup")(Order)

    @obj.document(collection="orders41_backup")
    class Backup(Order):
        pass

    with obj.Db(str(tmp_path / "redeclared.obj")) as db:
        db.insert(Order(1))
        db.insert(Backup(2))
        assert [d.n for _, d in db.all(Order)] == [1]  # (it stayed where it was declared)
        assert [type(d).__name__ for _, d in db.all(Backup)] == ["Backup"]
        assert list(db.all("orders41_backup")) == [(1, {"n": 2})]


def test_closing_a_db_names_itself_to_an_attached_files_iterator(tmp_path):
    a, m = str(tmp_path / "a.obj"), str(tmp_path / "m.obj")
    with obj.Db(a) as db:
        db.insert_many("blobs", [b"x%d" % i for i in range(1000)])
    main = obj.Db(m)
    main.attach(a, "ar")
    it = main.iter_all("ar.blobs")
    next(it)
    main.close()
    with pytest.raises(obj.ClosedError) as e:
        sum(1 for _ in it)
    assert str(e.value).startswith(f"database {m!r} (with {a!r} attached as 'ar') was closed"), str(e.value)


def test_stat_counts_one_kv_entry_in_the_singular(tmp_path):
    import subprocess
    import sys

    p = str(tmp_path / "kv.obj")
    with obj.Db(p) as db:
        db.kv("one").put(b"k", b"v")
        db.kv("two").put(b"k", b"v")
        db.kv("two").put(b"l", b"v")
    out = subprocess.run([sys.executable, "-m", "obj", "stat", p], capture_output=True, text=True, check=True).stdout
    assert "kv          one  [key-value]  1 entry\n" in out and "two  [key-value]  2 entries" in out, out


def test_a_document_class_declared_again_for_its_own_collection_is_told_to_declare_once():
    @obj.document(collection="once41", version=2)
    @dataclass
    class Once:
        n: int

    with pytest.raises(obj.InvalidArgumentError, match=r"collection 'once41' \(version 2\): declare it once"):
        obj.document(collection="once41", version=3)(Once)


def test_the_declared_index_hint_is_for_this_files_missing_index_only(tmp_path):
    from typing import Annotated

    @obj.document(collection="arch41.o")
    @dataclass
    class Archived:
        region: Annotated[str, obj.Index]

    a = str(tmp_path / "a.obj")
    with obj.Db(a) as db:
        db.insert("o", {"region": "eu"})
    with obj.Db(str(tmp_path / "m.obj")) as db:
        db.insert("x", {"a": 1})
        for run in (lambda: db.query(Archived).index_range("region", "eu", "us").fetch(),
                    lambda: list(db.index_range(Archived, "region", "eu", "us"))):
            with pytest.raises(obj.NotFoundError) as e:  # not attached: nothing to build
                run()
            assert "no attached namespace 'arch41'" in str(e.value) and "declares" not in str(e.value)
            db.attach(a, "arch41")
            with pytest.raises(obj.NotFoundError) as e:  # attached read-only: never built there
                run()
            # (which this handle cannot mend: review 45 names the file's own writable handle)
            assert "the file attached as 'arch41' does not have it yet" in str(e.value), str(e.value)
            assert "db.find_unique" not in str(e.value), str(e.value)
            db.detach("arch41")


def test_load_knows_a_dump_whose_header_keys_were_sorted_and_says_so_with_one_exit_code(tmp_path):
    import subprocess
    import sys

    dump = tmp_path / "all.jsonl"
    dump.write_text('{"collection":"c","count":1,"kind":"documents","next_id":2,"obj_export":1}\n'
                    '{"doc":{"n":1},"id":1}\n')
    target = str(tmp_path / "copy.obj")
    for name in (str(dump), "./" + dump.name):
        r = subprocess.run([sys.executable, "-m", "obj", "load", target, name], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 2 and "--all" in r.stderr, (name, r.returncode, r.stderr)
    assert not (tmp_path / "copy.obj").exists()


def test_dump_counts_plain_b_tree_entries(tmp_path):
    import subprocess
    import sys

    src = tmp_path / "tree.jsonl"
    src.write_text('{"obj_export":1,"tree":"users","count":1}\n{"key":{"$bytes":"YQ=="},"value":{"$bytes":"Yg=="}}\n')
    p = str(tmp_path / "tree.obj")
    with obj.Db(p) as db:
        db.import_(str(src))
    r = subprocess.run([sys.executable, "-m", "obj", "dump", p, "-o", str(tmp_path / "out.jsonl")],
                       capture_output=True, text=True, check=True)
    assert "dumped 0 documents, 0 key-value entries and 1 plain B+tree entry" in r.stderr, r.stderr
    assert '"tree":"users"' in (tmp_path / "out.jsonl").read_text()


def test_load_names_a_bad_lines_number_once(tmp_path):
    import subprocess
    import sys

    src = tmp_path / "bad.jsonl"
    src.write_text('{"a":1}\n{bad\n')
    r = subprocess.run([sys.executable, "-m", "obj", "load", str(tmp_path / "x.obj"), "c", str(src)],
                       capture_output=True, text=True)
    assert r.returncode == 5 and "line 2: " in r.stderr and "line 1" not in r.stderr, r.stderr
    assert "at column 2" in r.stderr, r.stderr
