"""`vidhash serve`: the real server, started by the CLI on 127.0.0.1 with an ephemeral port,
against a small index made here by the real `vidhash index` (shipped default model) and
`vidhash annotate`. Every endpoint, every refusal (status, one-line JSON reason), and that
the server keeps serving after each. Every search answer equals ``Index.search`` /
``Index.search_ids`` for the same query (ids, distances, scores), two-stage on an index
made by a model with a descriptor (:func:`served_descriptor_index`), codes-only with a
note on one without. The page itself is driven in test_serve_browser.py, which reuses
:func:`served_index`, :func:`served_descriptor_index` and :func:`serve` from here.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import media
import numpy as np
import pytest
from indexes import read_keyframes, run_vidhash, vidhash_argv
from PIL import Image

from vidhash.index import IndexStore
from vidhash.index.search.index import NO_DESCRIPTORS, Hit, Index

LABELS = "concept,group,video\ncat,local,cat.jpg\nrocket,global,launch.mp4\n"
_BUILT: dict[str, Path] = {}  # one index per test session, shared with the browser tests


def served_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two short videos and two photos, indexed at 1 keyframe/s, labelled cat and rocket."""
    if "index" not in _BUILT:
        root = tmp_path_factory.mktemp("serve")
        clips = root / "media"
        media.make_video(clips / "harbour.mp4", seconds=4, fps=10, gop=10)
        media.make_video(
            clips / "launch.mp4", seconds=3, fps=10, gop=10, frames_from=("rocket", "coffee")
        )
        media.make_image(clips / "cat.jpg", name="chelsea", size=(120, 80))
        media.make_image(clips / "cup.png", name="coffee", size=(80, 120))
        index = root / "index"
        result = run_vidhash("index", clips, "--out", index, "--every", "1")
        assert result.returncode == 0, result.stderr
        (root / "labels.csv").write_text(LABELS)
        result = run_vidhash("annotate", index, "--labels", root / "labels.csv")
        assert result.returncode == 0, result.stderr
        _BUILT["index"], _BUILT["media"] = index, clips
    return _BUILT["index"]


def served_descriptor_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same inputs and labels, indexed by a model with a descriptor: the shipped default
    net plus a 16-d descriptor of its hash head's hidden layer (a fixed random projection:
    the search only needs it to be the model's own), saved as a checkpoint."""
    if "descriptors" not in _BUILT:
        import torch

        from vidhash.models import shipped_path
        from vidhash.models.checkpoint import load_checkpoint, save_checkpoint

        clips = media_of(served_index(tmp_path_factory))
        root = tmp_path_factory.mktemp("serve-descriptors")
        net, header = load_checkpoint(shipped_path("default"))
        descriptor = net.add_descriptor("fc", 16)
        generator = torch.Generator().manual_seed(0)
        width = descriptor.mean.shape[0]
        descriptor.fit(np.zeros(width), torch.randn(width, 16, generator=generator).numpy())
        checkpoint = root / "described.safetensors"
        save_checkpoint(net, checkpoint, header)
        index = root / "index"
        result = run_vidhash("index", clips, "--out", index, "--every", "1", "--model", checkpoint)
        assert result.returncode == 0, result.stderr
        (root / "labels.csv").write_text(LABELS)
        result = run_vidhash("annotate", index, "--labels", root / "labels.csv")
        assert result.returncode == 0, result.stderr
        _BUILT["descriptors"] = index
    return _BUILT["descriptors"]


def media_of(index: Path) -> Path:
    return _BUILT["media"] if "media" in _BUILT else index.parent / "media"


def as_tuples(hits: list[dict] | list[Hit]) -> list[tuple[str, int, float | None]]:
    """(keyframe id, distance, score) of API hits or library hits, to compare exactly."""
    if hits and isinstance(hits[0], Hit):
        return [(h.keyframe_id, h.distance, h.score) for h in hits]
    return [(h["keyframe_id"], h["distance"], h["score"]) for h in hits]


@contextlib.contextmanager
def serve(index: Path, *args: str, timeout: float = 120) -> Iterator[str]:
    """Run `vidhash serve INDEX --port 0` in a child process; yields its base URL.

    On exit the server must still be running (it kept serving through whatever the test
    sent); then it is stopped with SIGTERM (uvicorn's graceful shutdown).
    """
    argv = vidhash_argv("serve", index, "--port", "0", "--log-level", "warning", *args)
    # stderr to a file: a pipe nobody reads could fill up and stall the server
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            url = _announced_url(proc, timeout)
            _wait_until_up(url, timeout)
            yield url
            log.seek(0)
            assert proc.poll() is None, f"the server exited ({proc.returncode}): {log.read()}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


def _announced_url(proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            if " at http://127.0.0.1:" in line:
                url = line.split(" at ", 1)[1].strip().rstrip("/")
                assert urlsplit(url).hostname == "127.0.0.1"
                return url
            if not line and proc.poll() is not None:
                break
    raise AssertionError(f"no server address announced (exit code {proc.poll()})")


def _wait_until_up(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/api/stats", trust_env=False, timeout=5).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


def client(url: str) -> httpx.Client:
    """A client that talks to the loopback server directly (never through a proxy)."""
    return httpx.Client(base_url=url, trust_env=False, timeout=120)


def raw_get(url: str, path: str) -> tuple[int, dict]:
    """GET a path byte for byte (no client normalises ``..`` or re-encodes it)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        kind = response.getheader("content-type", "")
        return response.status, json.loads(body) if kind.startswith("application/json") else {}
    finally:
        conn.close()


def assert_refused(status: int, body: dict, expected: int, reason: str) -> None:
    assert status == expected, body
    assert list(body) == ["error"] and reason in body["error"], body
    assert "\n" not in body["error"]


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.unpackbits(np.bitwise_xor(a, b)).sum())


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return served_index(tmp_path_factory)


@pytest.fixture(scope="module")
def url(index_dir: Path) -> Iterator[str]:
    with serve(index_dir, "--max-upload-mb", "1") as base:
        yield base


@pytest.fixture()
def api(url: str) -> Iterator[httpx.Client]:
    with client(url) as http:
        yield http
        assert http.get("/api/stats").status_code == 200  # still serving after the test


def test_announces_loopback(index_dir: Path) -> None:
    argv = vidhash_argv("serve", index_dir, "--port", "0", "--log-level", "warning")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = _announced_url(proc, 120)
        assert "loopback only" in proc.stdout.readline()
        assert urlsplit(url).port > 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_stats_concepts_and_videos(api: httpx.Client, index_dir: Path) -> None:
    table = read_keyframes(index_dir)
    stats = api.get("/api/stats").json()
    assert stats["keyframes"] == len(table) == 9 and stats["videos"] == 4
    assert stats["code_bits"] == 48 and stats["model_name"] == "default"
    concepts = api.get("/api/concepts").json()["concepts"]
    assert concepts == [
        {"name": "cat", "group": "local", "keyframes": 1},
        {"name": "rocket", "group": "global", "keyframes": 3},
    ]
    videos = api.get("/api/videos").json()
    assert videos["total"] == 4
    names = [v["video_name"] for v in videos["videos"]]
    assert sorted(names) == ["cat.jpg", "cup.png", "harbour.mp4", "launch.mp4"]
    assert {v["video_name"]: v["keyframes"] for v in videos["videos"]}["harbour.mp4"] == 4
    page = api.get("/api/videos", params={"offset": 3, "limit": 1}).json()
    assert [v["video_id"] for v in page["videos"]] == [videos["videos"][3]["video_id"]]


def test_keyframe_search_matches_the_library(api: httpx.Client, index_dir: Path) -> None:
    index = Index.open(index_dir)
    note = None if index.descriptor_dims else NO_DESCRIPTORS
    for kid in index.keyframes["keyframe_id"]:
        result = api.get("/api/search", params={"keyframe": kid, "k": 5}).json()
        hits = result["hits"]
        assert as_tuples(hits) == as_tuples(index.search_ids([kid], k=5)[0])
        assert hits[0]["distance"] == 0  # itself, or a twin with a smaller id
        assert (kid, 0) in [(h["keyframe_id"], h["distance"]) for h in hits]
        assert result["query"]["keyframe_id"] == kid
        assert result["note"] == note and result["rerank"] is True
        assert result["two_stage"] is (note is None)
    hit = hits[0]
    assert set(hit) >= {"keyframe_id", "video_path", "video_name", "time", "pts_time"}
    assert set(hit) >= {"distance", "score", "concepts", "thumbnail_url", "rank"}
    assert hit["time"].count(":") == 2 and hit["time"].endswith(f"{hit['pts_time']:.3f}"[-5:])
    stats = api.get("/api/stats").json()
    assert stats["note"] == note and stats["descriptor_dims"] == index.descriptor_dims


def test_thumbnail_is_the_recorded_jpeg(api: httpx.Client, index_dir: Path) -> None:
    row = read_keyframes(index_dir).iloc[2]
    hit = api.get("/api/search", params={"keyframe": row.keyframe_id, "k": 1}).json()["hits"][0]
    response = api.get(hit["thumbnail_url"])
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert response.content == (index_dir / row.image_path).read_bytes()


def test_concept_filter_and_exclusion_are_exact(api: httpx.Client, index_dir: Path) -> None:
    index = Index.open(index_dir)
    frame = index.keyframes
    rocket = [k for k in frame["keyframe_id"] if "rocket" in index.concepts_of(k)]
    query = frame.loc[frame["video_path"].str.endswith("harbour.mp4"), "keyframe_id"].iloc[1]
    code = index.code_of(query)
    params = {"keyframe": query, "k": 2, "concept": "rocket", "rerank": "false"}
    result = api.get("/api/search", params=params).json()
    expected = sorted((hamming(code, index.code_of(k)), k) for k in rocket)[:2]
    assert [(h["distance"], h["keyframe_id"]) for h in result["hits"]] == expected
    assert all("rocket" in h["concepts"] for h in result["hits"])

    own = api.get("/api/search", params={"keyframe": rocket[0], "k": 50, "concept": "rocket"})
    assert len(own.json()["hits"]) == 3
    other = api.get(
        "/api/search",
        params={"keyframe": rocket[0], "concept": "rocket", "exclude_same_video": "true"},
    )
    assert other.json()["hits"] == []
    anywhere = api.get(
        "/api/search", params={"keyframe": rocket[0], "k": 50, "exclude_same_video": "true"}
    ).json()["hits"]
    assert len(anywhere) == 9 - 3 and all(h["video_name"] != "launch.mp4" for h in anywhere)


def test_image_upload_finds_itself(api: httpx.Client, index_dir: Path) -> None:
    """The uploaded photo is encoded with the index's model: same code as when indexed."""
    photo = media_of(index_dir) / "cup.png"
    response = api.post(
        "/api/search", params={"k": 3}, files={"image": ("cup.png", photo.read_bytes())}
    )
    assert response.status_code == 200, response.text
    result = response.json()
    top = result["hits"][0]
    assert top["video_name"] == "cup.png" and top["distance"] == 0
    stored = Index.open(index_dir).code_of(top["keyframe_id"])
    assert result["query"]["code"] == stored.tobytes().hex()
    assert len(result["hits"]) == 3
    assert api.get("/api/stats").json()["model_status"] == "ready"
    concept = api.post(
        "/api/search",
        params={"concept": "cat"},
        files={"image": ("cat.jpg", (media_of(index_dir) / "cat.jpg").read_bytes())},
    ).json()
    assert [(h["video_name"], h["distance"]) for h in concept["hits"]] == [("cat.jpg", 0)]


@pytest.fixture(scope="module")
def described(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, httpx.Client]]:
    """The index with descriptors, served: (its folder, a client)."""
    index = served_descriptor_index(tmp_path_factory)
    with serve(index) as base, client(base) as http:
        yield index, http
        assert http.get("/api/stats").status_code == 200


@pytest.mark.parametrize("concept", [None, "rocket"])
def test_two_stage_keyframe_search_is_the_library(
    described: tuple[Path, httpx.Client], concept: str | None
) -> None:
    """Every keyframe as the query, re-ranked and by codes only, with and without a
    concept filter: the API's hits are ``Index.search_ids``'s, scores included."""
    index_dir, http = described
    index = Index.open(index_dir)
    assert index.descriptor_dims == 16
    reordered = 0
    for kid in index.keyframes["keyframe_id"]:
        answers = {}
        for rerank in (True, False):
            params = {"keyframe": kid, "k": 6, "rerank": str(rerank).lower()}
            if concept is not None:
                params["concept"] = concept
            result = http.get("/api/search", params=params).json()
            expected = index.search_ids([kid], k=6, rerank=rerank, concept=concept)[0]
            assert as_tuples(result["hits"]) == as_tuples(expected)
            assert result["rerank"] is rerank and result["two_stage"] is rerank
            assert result["note"] is None and result["concept"] == concept
            assert all(h["score"] is not None for h in result["hits"])
            answers[rerank] = result["hits"]
        by_codes = [(h["distance"], h["keyframe_id"]) for h in answers[False]]
        assert by_codes == sorted(by_codes)  # codes only: distance, then keyframe id
        scores = [h["score"] for h in answers[True]]
        assert scores == sorted(scores, reverse=True)
        reordered += [h["keyframe_id"] for h in answers[True]] != [
            h["keyframe_id"] for h in answers[False]
        ]
        if concept is None:  # the query finds itself first (ties: a twin, same score)
            own = next(h for h in answers[True] if h["keyframe_id"] == kid)
            assert own["distance"] == 0 and own["score"] == answers[True][0]["score"]
    assert reordered, "the descriptor re-rank never changed an order: the test shows nothing"


def test_two_stage_exclusion_is_the_library(described: tuple[Path, httpx.Client]) -> None:
    index_dir, http = described
    index = Index.open(index_dir)
    frame = index.keyframes
    query = frame.loc[frame["video_path"].str.endswith("launch.mp4"), "keyframe_id"].iloc[0]
    params = {"keyframe": query, "k": 50, "exclude_same_video": "true"}
    hits = http.get("/api/search", params=params).json()["hits"]
    expected = index.search_ids([query], k=50, exclude_same_video=True)[0]
    assert as_tuples(hits) == as_tuples(expected) and len(hits) == 9 - 3
    assert all(h["video_name"] != "launch.mp4" for h in hits)


@pytest.mark.parametrize(("concept", "rerank"), [(None, True), (None, False), ("rocket", True)])
def test_two_stage_upload_is_the_library(
    described: tuple[Path, httpx.Client], concept: str | None, rerank: bool
) -> None:
    """An uploaded photo is embedded (code and descriptor) by the index's model: the same
    answer as ``Index.search`` with the photo's stored code and descriptor."""
    index_dir, http = described
    index = Index.open(index_dir)
    photo = media_of(index_dir) / "cup.png"
    params = {"k": 5, "rerank": str(rerank).lower(), **({"concept": concept} if concept else {})}
    response = http.post(
        "/api/search", params=params, files={"image": ("cup.png", photo.read_bytes())}
    )
    assert response.status_code == 200, response.text
    result = response.json()
    frame = index.keyframes
    cup = frame.loc[frame["video_path"].str.endswith("cup.png"), "keyframe_id"].iloc[0]
    assert result["query"]["code"] == index.code_of(cup).tobytes().hex()
    expected = index.search(
        index.code_of(cup), k=5, descriptors=index.descriptor_of(cup), rerank=rerank,
        concept=concept,
    )  # fmt: skip
    got = as_tuples(result["hits"])
    assert [g[:2] for g in got] == [e[:2] for e in as_tuples(expected)]
    assert np.allclose([g[2] for g in got], [e.score for e in expected], atol=1e-3)
    assert result["two_stage"] is rerank and result["note"] is None
    if concept is None:
        assert got[0][0] == cup and got[0][1] == 0


def test_video_keyframes_strip(api: httpx.Client, index_dir: Path) -> None:
    table = read_keyframes(index_dir)
    video_id = table.loc[table["video_path"].str.endswith("harbour.mp4"), "video_id"].iloc[0]
    strip = api.get(f"/api/videos/{video_id}/keyframes").json()
    assert strip["video"]["video_name"] == "harbour.mp4"
    assert [k["pts_time"] for k in strip["keyframes"]] == [0.0, 1.0, 2.0, 3.0]
    assert [k["time"] for k in strip["keyframes"]][-1] == "0:00:03.000"
    status, body = raw_get(str(api.base_url), "/api/videos/" + "0" * 64 + "/keyframes")
    assert_refused(status, body, 404, "not in the index")
    status, body = raw_get(str(api.base_url), "/api/videos/..%2Fmeta/keyframes")
    assert status in (400, 404) and list(body) == ["error"]
    status, body = raw_get(str(api.base_url), "/api/videos/xyz/keyframes")
    assert_refused(status, body, 400, "64 hex digits")


KID = "0123456789abcdef-000001000"


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        ("/api/search?keyframe=nope", 400, "must be a keyframe id"),
        (f"/api/search?keyframe={KID}", 404, "is not in the index"),
        ("/api/search", 422, "keyframe: Field required"),
        ("/api/search?keyframe={kid}&k=0", 422, "k: Input should be greater than or equal to 1"),
        ("/api/search?keyframe={kid}&k=1001", 422, "less than or equal to 1000"),
        ("/api/search?keyframe={kid}&k=ten", 422, "valid integer"),
        ("/api/search?keyframe={kid}&concept=dog", 404, "concept 'dog' is not in the index"),
        ("/api/search?keyframe={kid}&exclude_same_video=maybe", 422, "exclude_same_video"),
        (f"/api/keyframes/{KID}.jpg", 404, "is not in the index"),
        ("/api/keyframes/{kid}.png", 400, "<keyframe id>.jpg"),
        ("/api/keyframes/../meta/meta.parquet", 400, "no path in it"),
        ("/api/keyframes/..%2Fmeta%2Fmeta.parquet", 400, "encoded slashes"),
        ("/api/keyframes/..%2fmeta%2fmeta.parquet", 400, "encoded slashes"),
        ("/api/keyframes/%2e%2e/meta/meta.parquet", 400, "no path in it"),
        ("/api/keyframes//etc/passwd", 400, "no path in it"),
        ("/api/keyframes/%2Fetc%2Fpasswd", 400, "encoded slashes"),
        ("/api/keyframes/..%5cmeta%5cmeta.parquet", 400, "encoded slashes"),
        ("/api/keyframes/{kid}.jpg/../../meta/meta.parquet", 400, "no path in it"),
        ("/api/keyframes/..", 400, "no path in it"),
        ("/api/nothing-here", 404, "no such page or endpoint"),
    ],
)
def test_bad_requests_get_one_line_reasons(
    api: httpx.Client, index_dir: Path, path: str, status: int, reason: str
) -> None:
    kid = read_keyframes(index_dir)["keyframe_id"].iloc[0]
    got, body = raw_get(str(api.base_url), path.format(kid=kid))
    assert_refused(got, body, status, reason)


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("1", (width, height)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("kwargs", "status", "reason"),
    [
        ({"files": {"image": ("notes.jpg", b"this is not a picture\n" * 40)}}, 415, "not an image"),
        ({"files": {"image": ("empty.png", b"")}}, 400, "empty"),
        ({"files": {"picture": ("cup.png", _png(8, 8))}}, 400, "field 'image'"),
        ({"json": {"image": "cup.png"}}, 415, "multipart/form-data"),
        ({"files": {"image": ("big.png", os.urandom(1_200_000))}}, 413, "limit of 1 MiB"),
        ({"files": {"image": ("wide.png", _png(10_000, 5_000))}}, 413, "10000x5000 pixels"),
        ({"files": {"image": ("x.png", _png(8, 8))}, "params": {"k": 0}}, 422, "k: Input"),
        (
            {"files": {"image": ("x.png", _png(8, 8))}, "params": {"exclude_same_video": 1}},
            400,
            "keyframe queries only",
        ),
    ],
)
def test_bad_uploads_get_one_line_reasons(
    api: httpx.Client, kwargs: dict, status: int, reason: str
) -> None:
    response = api.post("/api/search", **kwargs)
    assert_refused(response.status_code, response.json(), status, reason)


def test_upload_limit_holds_without_content_length(api: httpx.Client) -> None:
    """A chunked body has no Content-Length: the server counts and stops at the limit."""
    boundary = "vidhashboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(40):  # 40 x 64 KiB = 2.5 MiB, over the 1 MiB limit
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    response = api.post(
        "/api/search",
        content=body(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_refused(response.status_code, response.json(), 413, "limit of 1 MiB")


def test_page_static_files_and_docs(api: httpx.Client) -> None:
    page = api.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/static/app.js"' in page.text
    for name in ("app.js", "style.css"):
        asset = api.get(f"/static/{name}")
        assert asset.status_code == 200 and len(asset.text) > 1000
        assert "http://" not in asset.text and "https://" not in asset.text  # nothing remote
    assert "https://" not in page.text
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/api/search", "/api/concepts", "/api/stats", "/api/keyframes/{name}"} <= set(paths)
    assert {"get", "post"} <= set(paths["/api/search"])
    assert api.get("/docs").status_code == 200


def test_symlink_out_of_the_index_is_refused(index_dir: Path, tmp_path: Path) -> None:
    """A recorded image that resolves outside the index folder is never read."""
    copy = tmp_path / "index"
    shutil.copytree(index_dir, copy)
    row = read_keyframes(copy).iloc[0]
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"not for the web")
    image = copy / row.image_path
    image.unlink()
    image.symlink_to(secret)
    with serve(copy) as base:
        status, body = raw_get(base, f"/api/keyframes/{row.keyframe_id}.jpg")
        assert_refused(status, body, 403, "outside the index")


def test_reopens_when_the_index_changes(index_dir: Path, tmp_path: Path) -> None:
    """New labels and a new input show up without a restart; old ids keep working."""
    copy = tmp_path / "index"
    shutil.copytree(index_dir, copy)
    first = read_keyframes(copy)["keyframe_id"].iloc[0]
    with serve(copy) as base, client(base) as http:
        before = http.get("/api/stats").json()
        labels = tmp_path / "labels.csv"
        labels.write_text(LABELS + "cup,local,cup.png\n")
        assert run_vidhash("annotate", copy, "--labels", labels).returncode == 0
        with IndexStore.open(copy) as store:  # a writer adds one more input (2 keyframes)
            code = np.frombuffer(bytes.fromhex("00ff00ff00ff"), np.uint8)
            content = "f" * 64
            dims = int(store.meta.get("descriptor_dims") or 0)
            unit = np.full(dims, dims**-0.5, "<f2").tobytes()  # the index's own kind of row
            store.write_video(
                {"video_path": "added.mp4", "content_hash": content, "status": "ok"},
                [
                    {
                        "keyframe_id": f"{content[:16]}-00000{i}000",
                        "pts_time": float(i),
                        "code": code,
                        **({"descriptor": unit} if dims else {}),
                    }
                    for i in range(2)
                ],
            )
        deadline = time.monotonic() + 60
        stats = before
        while time.monotonic() < deadline and stats["generation"] == before["generation"]:
            time.sleep(0.25)
            stats = http.get("/api/stats").json()
        assert stats["generation"] > before["generation"], "the index was never reopened"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and stats["keyframes"] != before["keyframes"] + 2:
            time.sleep(0.25)  # both writes may land in two reopens
            stats = http.get("/api/stats").json()
        assert stats["keyframes"] == before["keyframes"] + 2 and stats["videos"] == 5
        names = [c["name"] for c in http.get("/api/concepts").json()["concepts"]]
        assert names == ["cat", "cup", "rocket"]
        hits = http.get("/api/search", params={"keyframe": first, "k": 50}).json()["hits"]
        assert len(hits) == 11 and hits[0]["keyframe_id"] == first


def test_keyframe_search_needs_no_model(tmp_path: Path) -> None:
    """An index whose model is not here still answers keyframe searches; image queries
    get a 503 that names the problem."""
    from test_index_helpers import build_index

    build_index(tmp_path / "idx", n_videos=2, per_video=3)
    kid = read_keyframes(tmp_path / "idx")["keyframe_id"].iloc[0]
    with serve(tmp_path / "idx") as base, client(base) as http:
        result = http.get("/api/search", params={"keyframe": kid}).json()
        hits = result["hits"]
        assert len(hits) == 6 and hits[0]["thumbnail_url"] is None
        # An index without descriptors answers by codes only, and says so.
        assert result["note"] == NO_DESCRIPTORS and result["two_stage"] is False
        assert as_tuples(hits) == as_tuples(Index.open(tmp_path / "idx").search_ids([kid])[0])
        assert all(h["score"] is None for h in hits)
        by_codes = http.get("/api/search", params={"keyframe": kid, "rerank": "false"}).json()
        assert by_codes["hits"] == hits and by_codes["note"] == NO_DESCRIPTORS
        response = http.post("/api/search", files={"image": ("x.png", _png(8, 8))})
        assert_refused(response.status_code, response.json(), 503, "index's model")
        stats = http.get("/api/stats").json()
        assert stats["model_status"] == "unavailable" and "test-model" in stats["model_error"]
        status, body = raw_get(base, f"/api/keyframes/{kid}.jpg")
        assert_refused(status, body, 404, "no stored image")


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    result = run_vidhash("serve", tmp_path / "missing", "--port", "0")
    assert result.returncode == 2 and result.stderr.startswith("error: no vidhash index")
    assert result.stderr.count("\n") == 1
    result = run_vidhash("serve", tmp_path / "missing", "--port", "70000")
    assert result.returncode == 2 and "--port must be from 0 to 65535" in result.stderr


def test_port_in_use_is_a_usage_error(index_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_vidhash("serve", index_dir, "--port", str(port))
    assert result.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert result.stderr.count("\n") == 1


def test_upload_decodes_like_the_indexer(tmp_path: Path) -> None:
    """Uploaded bytes give the pixels `vidhash index` reads from the file (EXIF applied)."""
    from vidhash.media import read_rgb
    from vidhash.serve.query import decode_upload
    from vidhash.transforms import center_crop_resize

    picture = np.zeros((40, 80, 3), np.uint8)
    picture[:, :40] = 255
    image = Image.fromarray(picture)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes())
    expected = center_crop_resize(read_rgb(path))
    assert expected[0, -1].mean() > 200 and expected[-1, 0].mean() < 50  # upright, not raw
    assert np.array_equal(decode_upload(path.read_bytes(), 10**7), expected)
