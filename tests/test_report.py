"""Figures, Prefect artifacts and the offline HTML report, checked in a real headless Chromium."""

from __future__ import annotations

import shutil

import pytest

from conftest import SETS, chromium_page
from flows.cli import main
from tsatlas.storage import Store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FIGURES = {"loss", "embeddings", "prototypes", "real_vs_synthetic", "errors"}


def test_figures_artifacts_and_html_report(prefect_harness, tiny_csv, tmp_path, capsys):
    import json

    root = tmp_path / "art"
    assert main(["run", "--data", tiny_csv, "--root", str(root), "--json", *SETS]) == 0
    m = json.loads(capsys.readouterr().out)
    store = Store(str(root))
    assert set(m["plots"]) == FIGURES
    for name, p in m["plots"].items():
        png = store.get_bytes(f"runs/{m['run_id']}/plots/{name}.png", p["sha256"])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    protos = store.get_table(f"runs/{m['run_id']}/prototypes.parquet", m["prototypes"]["sha256"])
    assert protos.num_rows == m["metrics"]["cluster"]["k"]

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    keys = ["tsatlas-summary", "tsatlas-clusters", "tsatlas-metrics", "tsatlas-figures"]
    with get_client(sync_client=True) as client:  # newest first: other tests' runs publish the same keys
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)),
                                      sort=ArtifactSort.CREATED_DESC)
    assert {a.key for a in found} == set(keys)
    summary = next(a for a in found if a.key == "tsatlas-summary")
    assert m["run_id"] in summary.data and "silhouette" in summary.data

    out = tmp_path / "report.html"
    assert main(["report", m["run_id"], "--root", str(root), "--out", str(out)]) == 0
    assert store.exists(f"runs/{m['run_id']}/report.html")
    page = out.read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page  # self-contained
    assert main(["report", m["run_id"], "--root", str(root), "--out", str(tmp_path / "no" / "x.html")]) == 2
    assert f"--out {tmp_path / 'no' / 'x.html'}: cannot write the page (No such file or directory)" in capsys.readouterr().err

    if not CHROMIUM:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser, page = chromium_page(p, CHROMIUM)
        errors = page.errors
        page.goto(out.as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
        browser.close()
    assert len(images) == len(FIGURES) and all(ok and width > 0 for _, ok, width in images), images
    assert errors == []


def test_report_of_an_unknown_run(tmp_path, capsys):
    assert main(["report", "nope", "--root", str(tmp_path)]) == 2
    assert "no such run" in capsys.readouterr().err


def test_every_figure_is_inlined_downscaled_to_fit_and_linked_where_a_browser_can_open_it():
    import io

    import matplotlib.pyplot as plt
    import numpy as np

    from tsatlas.report import figures_markdown

    def png(side: int, noise: bool) -> bytes:
        fig, ax = plt.subplots(figsize=(side / 100, side / 100))
        ax.imshow(np.random.default_rng(0).random((side, side)) if noise else np.zeros((4, 4)))
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        return buf.getvalue()

    images = {"big": png(900, True), "small": png(200, False), "other": png(300, False)}
    assert len(images["big"]) > 400_000
    links = {"big": "https://bucket.example/plots/big.png?X-Amz-Signature=abc", "small": None, "other": None}
    md = figures_markdown(images, links, budget=300_000)
    assert md.count("data:image/png;base64,") == 3 and len(md) < 300_000 + 1_000  # all three, within the budget
    assert "## big (compressed to fit)" in md and "## small\n" in md  # only what did not fit was shrunk
    assert "[full size](https://bucket.example/plots/big.png?X-Amz-Signature=abc)" in md
    assert md.count("full size") == 1  # a local path is not a link the UI could open
