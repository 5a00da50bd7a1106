"""report.html in a real headless Chromium: the first screen holds the results.

A reader opens the report for the headline MAP table (per group, both models and their
difference); settings and model configs are folded below. Rendered at 1280x900 by
Debian's Chromium (skipped without it; .ci/run requires it).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pytest
from test_eval_concepts import BITS, make_index

from vidhash.eval import concepts, report

pytestmark = pytest.mark.browser


def test_first_screen_shows_the_headline_table(tmp_path: Path, browser) -> None:
    from selenium.webdriver.common.by import By

    rng = np.random.default_rng(7)
    videos = {f"v{i}.mp4": rng.integers(0, 2, (3, BITS)) for i in range(6)}
    labels = [("v0.mp4", "*", "local:car"), ("v1.mp4", "*", "local:car"),
              ("v2.mp4", "*", "global:street"), ("v3.mp4", "0", "global:street"),
              ("v4.mp4", "1", "local:person"), ("v5.mp4", "*", "global:beach")]  # fmt: skip
    a, _ = make_index(tmp_path / "a", videos, labels, images=True)
    b, _ = make_index(tmp_path / "b", {k: 1 - v for k, v in videos.items()}, labels,
                      model_id="n" * 64, images=True)  # fmt: skip
    data = {"proposed": concepts.load_index(a), "baseline": concepts.load_index(b)}
    # A long training history in the model config: it must not push the results down.
    history = [{"epoch": e, "train_loss": 1.0 / e} for e in range(1, 200)]
    for d in data.values():
        d.meta["model_config"] = json.dumps({"arch": "psp", "train": {"history": history}})
    runs = {n: concepts.evaluate_concepts(d, [10, 50]) for n, d in data.items()}
    written = report.write_report(tmp_path / "out", runs, data, n_sheets=2)

    browser.get(written["html"].resolve().as_uri())
    height = browser.execute_script("return window.innerHeight")
    table = browser.find_element(By.CSS_SELECTOR, "table.headline")
    rect = table.rect
    assert rect["y"] >= 0 and rect["y"] + rect["height"] <= height, (rect, height)
    text = table.text
    assert "MAP@10 proposed" in text and "MAP@10 baseline" in text and "MAP@50" in text
    assert "global" in text and "local" in text
    # The model configs are folded: nothing of them is visible until opened.
    configs = [p for p in browser.find_elements(By.TAG_NAME, "pre") if "history" in p.text]
    assert not configs  # hidden <details> content has no rendered text
    page = html.unescape(written["html"].read_text())
    assert '"epochs": 199' in page and '"epoch": 1,' not in page  # summarised, not dumped
