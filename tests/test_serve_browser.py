"""The search page in a real headless Chromium (Debian's, through its own chromedriver:
nothing is downloaded), against the real `vidhash serve` on 127.0.0.1.

Skipped without chromium/chromedriver/selenium (a fresh dev machine); .ci/run installs
them and sets VIDHASH_REQUIRE_BROWSER=1, which turns a skip into a failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from indexes import read_keyframes
from test_serve_api import media_of, serve, served_descriptor_index, served_index

from vidhash.index.search.index import NO_DESCRIPTORS, Index

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return served_index(tmp_path_factory)


@pytest.fixture(scope="module")
def url(index_dir: Path) -> Iterator[str]:
    with serve(index_dir) as base:
        yield base


@pytest.fixture(scope="module")
def described_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The index made by a model with a descriptor, served."""
    with serve(served_descriptor_index(tmp_path_factory)) as base:
        yield base


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60) -> object:
    """Poll ``condition`` until it returns something truthy (bounded in time)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except Exception as exc:  # the page is re-rendering: elements come and go
            last = exc
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def hit_cards(driver, field: str = ".name") -> list[tuple[str, int, str]]:
    """(keyframe id, distance, the text of ``field``: video name or ``.score``) of every
    card in the hit grid."""
    from selenium.webdriver.common.by import By

    cards = driver.find_elements(By.CSS_SELECTOR, '#grid[data-mode="hits"] .card')
    return [
        (
            c.get_attribute("data-keyframe-id"),
            int(c.get_attribute("data-distance")),
            c.find_element(By.CSS_SELECTOR, field).text,
        )
        for c in cards
    ]


def shown_notes(driver) -> list[str]:
    """The visible lines of the page that carry the codes-only note."""
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, "p") if e.is_displayed()]


def unique_keyframe(index_dir: Path, video: str) -> str:
    """A keyframe of ``video`` that no other keyframe shares a code with (so it is hit 1)."""
    index = Index.open(index_dir)
    for kid, path in zip(
        index.keyframes["keyframe_id"], index.keyframes["video_path"], strict=True
    ):
        if Path(path).name == video:
            zero = [h for h in index.search_ids([kid], k=3)[0] if h.distance == 0]
            if len(zero) == 1:
                return kid
    raise AssertionError(f"every keyframe of {video} has a twin")


def test_click_a_keyframe_then_a_hit(browser, url: str, index_dir: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{url}/")
    covers = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, '#grid[data-mode="videos"] .card'),
        "the video grid",
    )
    assert len(covers) == 4
    assert "9 keyframes" in browser.find_element(By.ID, "stats").text
    launch = next(
        c for c in covers if c.find_element(By.CSS_SELECTOR, ".name").text == "launch.mp4"
    )
    query = launch.get_attribute("data-keyframe-id")
    launch.click()
    hits = wait_for(lambda: hit_cards(browser), "hits after clicking a video")
    expected = Index.open(index_dir).search_ids([query], k=20)[0]
    assert hits == [(h.keyframe_id, h.distance, Path(h.video_path).name) for h in expected]
    assert hits[0][1] == 0 and query in [kid for kid, d, _ in hits if d == 0]
    assert f"keyframe={query}" in browser.current_url
    strip = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#strip .card"), "the video's strip"
    )
    times = [c.find_element(By.CSS_SELECTOR, ".time").text for c in strip]
    assert times == ["0:00:00.000", "0:00:01.000", "0:00:02.000"]
    browser.save_screenshot(str(tmp_path / "after-click.png"))

    # Click a hit from another video: it becomes the query, first at distance 0.
    second = unique_keyframe(index_dir, "harbour.mp4")
    card = browser.find_element(By.CSS_SELECTOR, f'#grid .card[data-keyframe-id="{second}"]')
    card.click()
    hits = wait_for(
        lambda: (h := hit_cards(browser)) and h[0][0] == second and h, "hits of the clicked hit"
    )
    assert hits[0] == (second, 0, "harbour.mp4")
    assert "harbour.mp4" in browser.find_element(By.ID, "strip-title").text
    # An index without descriptors says so, once; with them, nothing is said.
    no_descriptors = Index.open(index_dir).descriptor_dims == 0
    assert shown_notes(browser).count(NO_DESCRIPTORS) == int(no_descriptors)
    assert not browser.find_elements(By.CSS_SELECTOR, "#grid .score") or not no_descriptors


def test_scores_and_codes_only(
    browser, described_url: str, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """On an index with descriptors each hit shows its score beside its distance, in
    the two-stage order; "codes only" gives the Hamming order, and goes in the address."""
    from selenium.webdriver.common.by import By

    index = Index.open(served_descriptor_index(tmp_path_factory))

    def expected(query: str, rerank: bool) -> list[tuple[str, int, str]]:
        hits = index.search_ids([query], k=20, rerank=rerank)[0]
        return [(h.keyframe_id, h.distance, f"{h.score:.3f}") for h in hits]

    # a query whose two orders differ, else the switch below would show nothing
    query = next(
        kid for kid in index.keyframes["keyframe_id"] if expected(kid, True) != expected(kid, False)
    )
    two_stage, by_codes = expected(query, True), expected(query, False)
    browser.get(f"{described_url}/#keyframe={query}")
    assert wait_for(lambda: hit_cards(browser, ".score") == two_stage, "scored hits")
    assert NO_DESCRIPTORS not in shown_notes(browser)
    assert "re-ranked by descriptor" in browser.find_element(By.ID, "status").text
    browser.find_element(By.ID, "codes-only").click()
    assert wait_for(lambda: hit_cards(browser, ".score") == by_codes, "the Hamming order")
    assert "rerank=false" in browser.current_url
    assert "by codes" in browser.find_element(By.ID, "status").text
    browser.save_screenshot(str(tmp_path / "scores.png"))


def test_upload_an_image(browser, url: str, index_dir: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{url}/")
    picker = wait_for(lambda: browser.find_element(By.ID, "file"), "the file picker")
    picker.send_keys(str(media_of(index_dir) / "cup.png"))
    hits = wait_for(lambda: hit_cards(browser), "hits of the uploaded image")
    cup = read_keyframes(index_dir)
    cup = cup.loc[cup["video_path"].str.endswith("cup.png"), "keyframe_id"].iloc[0]
    assert hits[0] == (cup, 0, "cup.png")
    assert not browser.find_element(By.ID, "query-image").get_attribute("hidden")


def test_concept_filter_and_errors(browser, url: str, index_dir: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    query = unique_keyframe(index_dir, "harbour.mp4")
    browser.get(f"{url}/#keyframe={query}")
    wait_for(lambda: hit_cards(browser), "hits from the address")
    select = Select(wait_for(lambda: browser.find_element(By.ID, "concept"), "concepts"))
    assert [o.text for o in select.options] == ["all keyframes", "cat (1)", "rocket (3)"]
    select.select_by_value("rocket")
    hits = wait_for(lambda: (h := hit_cards(browser)) and len(h) == 3 and h, "the rocket-only hits")
    names = {name for _, _, name in hits}
    assert names == {"launch.mp4"}
    chips = browser.find_elements(By.CSS_SELECTOR, '#grid[data-mode="hits"] .card .chip')
    assert [c.text for c in chips] == ["rocket"] * 3

    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not a picture\n" * 20)
    browser.find_element(By.ID, "file").send_keys(str(not_image))
    line = browser.find_element(By.ID, "status")
    status = wait_for(lambda: "error" in line.get_attribute("class") and line.text, "the error")
    assert "not an image" in status
