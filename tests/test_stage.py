"""run_stage and the catalog: keys per stage code version, verified reuse, typed references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tsatlas import catalog, stage
from tsatlas.storage import Store


def test_a_caption_edit_changes_only_the_report_key(monkeypatch):
    before = {s: stage.stage_version(s) for s in stage.STAGE_MODULES}
    real = Path.read_bytes

    def edited(self):
        data = real(self)
        return data + b"\n# a new caption\n" if self.name == "report.py" else data

    monkeypatch.setattr(Path, "read_bytes", edited)
    stage.stage_version.cache_clear()
    try:
        after = {s: stage.stage_version(s) for s in stage.STAGE_MODULES}
    finally:
        monkeypatch.undo()
        stage.stage_version.cache_clear()
    assert [s for s in before if before[s] != after[s]] == ["report"]


def test_every_stage_module_exists_and_no_stage_depends_on_report_code():
    here = Path(stage.__file__).parent
    for name, modules in stage.STAGE_MODULES.items():
        assert all((here / f"{m}.py").exists() for m in modules), name
        if name != "report":
            assert not {"report", "plots"} & set(modules), name


def test_run_stage_reuses_verifies_and_recomputes(tmp_path):
    store = Store(str(tmp_path))
    calls = []

    def compute(w):
        calls.append(w.prefix)
        w.put_bytes("model.pt", b"weights")
        return catalog.finish(w, "model.pt", 1, metrics={"epochs": 1})

    ref = stage.run_stage(store, "train", ["in"], {"lr": 1}, compute)
    assert isinstance(ref, catalog.ModelRef) and ref.metrics == {"epochs": 1}
    assert stage.run_stage(store, "train", ["in"], {"lr": 1}, compute) == ref and len(calls) == 1
    assert stage.run_stage(store, "train", ["in"], {"lr": 2}, compute).key != ref.key and len(calls) == 2
    # a deleted file: not reused, computed again into a new attempt folder
    Path(store.path(f"{ref.prefix}/model.pt")).unlink()
    again = stage.run_stage(store, "train", ["in"], {"lr": 1}, compute)
    assert len(calls) == 3 and again.prefix != ref.prefix and again.key == ref.key


def test_references_round_trip_through_json_and_the_manifest():
    ref = catalog.StageRef.from_json({"stage": "windows", "key": "k", "prefix": "stages/windows/k/a", "main": "windows.parquet",
                                      "files": {"windows.parquet": "ab", "scaler.parquet": "cd"}, "rows": 3,
                                      "uri": "/x/windows.parquet", "facts": {"shape": [3, 4, 1], "channels": ["v"]}})
    assert isinstance(ref, catalog.WindowsRef) and ref.shape == [3, 4, 1] and ref.sha256 == "ab"
    assert catalog.StageRef.from_json(json.loads(json.dumps(ref.to_json()))) == ref
    m = {"stages": {"windows": ref.manifest_entry()}}
    back = catalog.stage_ref(m, "windows")
    assert (back.prefix, back.files, back.main, back.rows) == (ref.prefix, ref.files, ref.main, ref.rows)


def test_core_imports_no_prefect():
    import subprocess
    import sys

    code = ("import sys, tsatlas.catalog, tsatlas.stage, tsatlas.trainer, tsatlas.ingest, tsatlas.generation, "
            "tsatlas.scoring, tsatlas.report, tsatlas.partitions, tsatlas.ddp; "
            "print(any(m == 'prefect' or m.startswith('prefect.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


@pytest.mark.parametrize("module", ["ingest", "windows", "train", "embed", "cluster", "generate", "report", "manifest", "score"])
def test_tasks_import_no_task_and_no_flow(module):
    src = (Path(stage.__file__).parents[1] / "tasks" / f"{module}.py").read_text()
    imports = [ln for ln in src.splitlines() if ln.startswith(("from ", "import "))]
    assert not [ln for ln in imports if ln.startswith(("from flows", "import flows"))]
    assert not [ln for ln in imports if ln.startswith("from tasks.") and not ln.startswith("from tasks.common ")]
