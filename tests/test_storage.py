import os

import pyarrow as pa
import pytest

from tsatlas import catalog
from tsatlas.errors import StorageError
from tsatlas.storage import Store, check_key


def test_atomic_write_checksum_and_table_round_trip(tmp_path):
    s = Store(str(tmp_path / "root"))
    sha = s.put_table("stages/x/k1/t.parquet", pa.table({"a": [1, 2, 3]}))
    assert s.get_table("stages/x/k1/t.parquet", sha).column("a").to_pylist() == [1, 2, 3]
    assert not [f for f in os.listdir(tmp_path / "root/stages/x/k1") if f.startswith(".tmp")]


def test_corrupt_artifact_is_refused_with_a_clear_message(tmp_path):
    s = Store(str(tmp_path))
    sha = s.put_bytes("a/b.bin", b"hello")
    with open(s.path("a/b.bin"), "r+b") as f:
        f.write(b"J")
    with pytest.raises(StorageError, match=r"a/b\.bin: checksum mismatch .* corrupt"):
        s.get_bytes("a/b.bin", sha)


def test_stage_attempts_publish_last_and_never_clobber(tmp_path):
    s = Store(str(tmp_path))
    assert catalog.find(s, "train", "abc") is None
    with s.stage("train", "abc") as one, s.stage("train", "abc") as two:
        one.put_bytes("model.pt", b"first")
        two.put_bytes("model.pt", b"second")
        ref1 = catalog.finish(one, "model.pt", 1, metrics={"epochs": 1})
        ref2 = catalog.finish(two, "model.pt", 1)
    assert catalog.find(s, "train", "abc") == ref2 and ref1.prefix != ref2.prefix
    assert isinstance(ref2, catalog.ModelRef)
    assert s.get_bytes(f"{ref1.prefix}/model.pt", ref1.sha256) == b"first"
    assert s.get_bytes(f"{ref2.prefix}/model.pt", ref2.sha256) == b"second"


def test_failed_attempt_leaves_nothing(tmp_path):
    s = Store(str(tmp_path))
    with pytest.raises(RuntimeError):
        with s.stage("embed", "k") as w:
            w.put_bytes("a.parquet", b"half")
            raise RuntimeError("crash before finish")
    assert catalog.find(s, "embed", "k") is None
    assert not os.path.exists(tmp_path / "stages/embed/k") or not os.listdir(tmp_path / "stages/embed/k")


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "runs/../../x", "a//b", "runs/a b", ""])
def test_keys_cannot_escape_the_root(key):
    with pytest.raises(StorageError, match="unsafe artifact key"):
        check_key(key)


def test_unknown_scheme_is_a_storage_error():
    with pytest.raises(StorageError, match="cannot open store root 'nosuch://x'"):
        Store("nosuch://x")
