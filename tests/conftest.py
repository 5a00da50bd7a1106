"""Shared fixtures: a session-wide folder of small real media made by ``tests/media.py``."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import media  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


FFMPEG_PROGRAMS = ("ffmpeg", "ffprobe")
# Set by .ci/run, which installs FFmpeg: there a missing program fails the run, never skips.
REQUIRE_FFMPEG = os.environ.get("VIDHASH_REQUIRE_FFMPEG") == "1"
# The browser tests drive Debian's Chromium through its own chromedriver (no download).
CHROMIUM = os.environ.get("VIDHASH_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("VIDHASH_CHROMEDRIVER", "/usr/bin/chromedriver")
# Set by .ci/run, which installs chromium and chromium-driver: missing, they fail the run.
REQUIRE_BROWSER = os.environ.get("VIDHASH_REQUIRE_BROWSER") == "1"


def _browser_missing() -> list[str]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    return missing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``shared`` tests without ../shared/data, ``ffmpeg`` tests without FFmpeg and
    ``browser`` tests without Chromium and its driver (unless CI requires them)."""
    missing = [p for p in FFMPEG_PROGRAMS if shutil.which(p) is None]
    if missing and REQUIRE_FFMPEG and any("ffmpeg" in item.keywords for item in items):
        raise pytest.UsageError(
            f"VIDHASH_REQUIRE_FFMPEG=1 but {', '.join(missing)} not on PATH: "
            "the ffmpeg-backend tests would be skipped"
        )
    no_browser = _browser_missing()
    if no_browser and REQUIRE_BROWSER and any("browser" in item.keywords for item in items):
        raise pytest.UsageError(
            f"VIDHASH_REQUIRE_BROWSER=1 but {', '.join(no_browser)} missing: "
            "the browser tests would be skipped"
        )
    skips = {
        "shared": None
        if SHARED_DATA.is_dir()
        else pytest.mark.skip(reason=f"needs {SHARED_DATA} (development data, not in the repo)"),
        "ffmpeg": None
        if not missing
        else pytest.mark.skip(reason=f"needs {' and '.join(missing)} (apt-get install ffmpeg)"),
        "browser": None
        if not no_browser
        else pytest.mark.skip(
            reason=f"needs {', '.join(no_browser)} "
            "(apt-get install chromium chromium-driver; pip install selenium)"
        ),
    }
    for item in items:
        for marker, skip in skips.items():
            if skip is not None and marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data (tests using it are marked ``shared`` and skip without it)."""
    return SHARED_DATA


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of small real test media, made once per session. Treat it as read-only.

    Videos (4 s unless noted, 10 fps, 96x64):
      h264.mp4 (GOP 10), mpeg4.avi, vp9.webm, rotated.mp4 (2 s, display matrix 90 deg,
      64x96 stored, 96x64 upright), vfr.mkv (alternating 100/300 ms intervals),
      h264-cut.mp4 / mpeg4-cut.avi (first 60% of the bytes of 6 s clips with GOP 10; the MP4
      has its index in front), long.mp4 (12 s, 5 fps, GOP 10), nodur.webm (3 s VP9
      written as a stream: no duration or cues in the header);
    broken inputs: zero.mp4 (0 bytes), random.mp4 (random bytes), text.avi (text);
    stills: still.jpg (chelsea), still.png (coffee).
    """
    root = tmp_path_factory.mktemp("media")
    media.make_video(root / "h264.mp4", codec="h264", seconds=4, fps=10, gop=10)
    media.make_video(root / "mpeg4.avi", codec="mpeg4", seconds=4, fps=10, gop=10)
    media.make_video(root / "vp9.webm", codec="vp9", seconds=4, fps=10, gop=10)
    media.make_video(root / "rotated.mp4", seconds=2, fps=10, size=(96, 64), gop=10, rotate=90)
    media.make_video(root / "vfr.mkv", codec="h264", seconds=4, fps=10, vfr=True, gop=5)
    full = media.make_video(
        root / "cut-src" / "h264.mp4", seconds=6, fps=10, gop=10, faststart=True
    )
    media.truncate(full, 0.6, root / "h264-cut.mp4")
    full = media.make_video(
        root / "cut-src" / "mpeg4.avi", codec="mpeg4", seconds=6, fps=10, gop=10
    )
    media.truncate(full, 0.6, root / "mpeg4-cut.avi")
    media.make_video(root / "long.mp4", codec="h264", seconds=12, fps=5, gop=10)
    media.make_video(root / "nodur.webm", codec="vp9", seconds=3, fps=10, gop=10, streaming=True)
    (root / "zero.mp4").write_bytes(b"")
    media.random_bytes(root / "random.mp4")
    (root / "text.avi").write_text("this is not a video\n" * 50)
    media.make_image(root / "still.jpg", name="chelsea", size=(120, 80))
    media.make_image(root / "still.png", name="coffee", size=(80, 120))
    os.chmod(root, 0o755)
    return root


@pytest.fixture(scope="session")
def default_model():
    """The shipped default hashing network, loaded once."""
    from vidhash.models import load_model

    return load_model("default")


# Quiet on a closed network: no background requests, no proxy, no first-run machinery.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
    "--window-size=1280,900",
)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """Debian's headless Chromium driven through its own chromedriver (a real browser)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
