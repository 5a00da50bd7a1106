"""The one image reader (EXIF orientation) and the one JPEG encoder, as every stage sees them."""

from __future__ import annotations

from pathlib import Path

import media
import numpy as np
import pytest
from PIL import Image

from vidhash.errors import InputError
from vidhash.media import encode_jpeg, read_rgb

ROTATE_90_CW = 6  # EXIF orientation: the stored picture is shown turned 90 degrees clockwise


def phone_photo(path: Path) -> np.ndarray:
    """A 60x40 picture saved as a phone does: pixels stored sideways, EXIF says turn it."""
    stored = np.ascontiguousarray(media.photo("chelsea")[:40, :60])
    exif = Image.Exif()
    exif[0x0112] = ROTATE_90_CW
    Image.fromarray(stored).save(path, format="JPEG", quality=95, exif=exif)
    return stored


def test_every_stage_reads_a_phone_photo_upright(tmp_path: Path) -> None:
    from vidhash.eval.protocols import load_image
    from vidhash.index.search.sheet import load_rgb
    from vidhash.train import datasets
    from vidhash.video.sampling import iter_keyframes

    path = tmp_path / "phone.jpg"
    phone_photo(path)
    upright = read_rgb(path)
    assert upright.shape == (60, 40, 3)  # turned: taller than wide
    assert datasets.read_rgb is read_rgb  # training
    assert np.array_equal(load_rgb(path), upright)  # contact sheets
    assert load_image(path, size=32).shape == (32, 32, 3)  # eval protocols
    (keyframe,) = iter_keyframes(path, video_hash="0" * 64, size=32)  # ingest
    assert (keyframe.width, keyframe.height) == (40, 60)


def test_an_unreadable_image_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("not a picture\nat all")
    with pytest.raises(InputError, match=r"^cannot read image .*notes.jpg: unknown image format$"):
        read_rgb(path)


def test_the_jpeg_encoder_gives_the_same_bytes_for_the_same_pixels() -> None:
    pixels = np.ascontiguousarray(media.photo("coffee")[:64, :64])
    first, again = encode_jpeg(pixels, 90), encode_jpeg(pixels.copy(), 90)
    assert first == again and first[:2] == b"\xff\xd8"
    assert encode_jpeg(pixels, 40) != first
