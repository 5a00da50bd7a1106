"""Contact sheets: the query beside a grid of its results, captioned, optionally marked.

Used by ``vidhash search --sheet`` and by the evaluation reports (where each result is
marked a hit or a miss with a green or red border). Drawn with PIL: no figure machinery
is needed for a grid of thumbnails, and it stays fast for hundreds of sheets.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vidhash.fsutil import atomic_path
from vidhash.media import read_rgb

TILE = 160
PAD = 8
CAPTION_LINES = 3
BORDER = 5
HIT_COLOUR = (30, 170, 60)
MISS_COLOUR = (210, 40, 40)
QUERY_COLOUR = (40, 90, 220)
BACKGROUND = (255, 255, 255)
TEXT_COLOUR = (20, 20, 20)
_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _thumbnail(image: np.ndarray | None, side: int) -> Image.Image:
    """Fit an RGB (or grey) image into a side x side tile, keeping its aspect ratio."""
    tile = Image.new("RGB", (side, side), (235, 235, 235))
    if image is None:
        ImageDraw.Draw(tile).text(
            (side // 2, side // 2), "no image", fill=(120, 120, 120), font=_font(14), anchor="mm"
        )
        return tile
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"sheet images must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    picture = Image.fromarray(np.ascontiguousarray(array[..., :3]))
    scale = side / max(picture.width, picture.height)  # shrink or enlarge to fill the tile
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    picture = picture.resize(size, Image.Resampling.LANCZOS)
    tile.paste(picture, ((side - picture.width) // 2, (side - picture.height) // 2))
    return tile


def _fit_line(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength("…" + text, font=font) > width:
        text = text[1:]  # keep the end: file names differ at the end more often
    return "…" + text


def make_contact_sheet(
    query_image: np.ndarray | None,
    results: Sequence[tuple[np.ndarray | None, str, bool | None]],
    out_path: str | os.PathLike,
    title: str | None = None,
    columns: int = 5,
    query_caption: str = "query",
) -> Path:
    """Write a sheet: the query tile (if given), then results in a grid, each captioned.

    ``results`` holds (RGB uint8 image or None, caption with '\\n' between lines, mark):
    mark True draws a green border (a hit), False a red one (a miss), None none. The
    format follows the suffix (.jpg, .png, .webp); the file is written atomically.
    """
    out_path = Path(out_path)
    fmt = _FORMATS.get(out_path.suffix.lower())
    if fmt is None:
        raise ValueError(f"sheet must be .jpg, .png or .webp, got {out_path.name!r}")
    font = _font(12)
    title_font = _font(16)
    line_height = 15
    cell_w = TILE + 2 * PAD
    cell_h = TILE + 2 * PAD + CAPTION_LINES * line_height
    columns = max(1, min(columns, len(results) or 1))
    rows = max(1, -(-len(results) // columns))
    query_w = cell_w + PAD if query_image is not None or not results else 0
    title_h = 30 if title else 0
    sheet = Image.new("RGB", (query_w + columns * cell_w, title_h + rows * cell_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text(
            (PAD, 7),
            _fit_line(draw, title, title_font, sheet.width - 2 * PAD),
            fill=TEXT_COLOUR,
            font=title_font,
        )

    def place(x: int, y: int, image, caption: str, colour) -> None:
        tile = _thumbnail(image, TILE)
        sheet.paste(tile, (x + PAD, y + PAD))
        if colour is not None:
            draw.rectangle(
                (
                    x + PAD - BORDER // 2 - 1,
                    y + PAD - BORDER // 2 - 1,
                    x + PAD + TILE + BORDER // 2,
                    y + PAD + TILE + BORDER // 2,
                ),
                outline=colour,
                width=BORDER,
            )
        for n, line in enumerate(caption.split("\n")[:CAPTION_LINES]):
            draw.text(
                (x + PAD, y + TILE + PAD + 4 + n * line_height),
                _fit_line(draw, line, font, TILE),
                fill=TEXT_COLOUR,
                font=font,
            )

    if query_w:
        place(0, title_h, query_image, query_caption, QUERY_COLOUR)
        draw.line(
            (query_w - PAD // 2, title_h, query_w - PAD // 2, sheet.height),
            fill=(200, 200, 200),
            width=1,
        )
    for i, (image, caption, mark) in enumerate(results):
        row, col = divmod(i, columns)
        colour = None if mark is None else (HIT_COLOUR if mark else MISS_COLOUR)
        place(query_w + col * cell_w, title_h + row * cell_h, image, caption, colour)

    with atomic_path(out_path) as tmp:
        options = {"quality": 90} if fmt in ("JPEG", "WEBP") else {}
        sheet.save(tmp, format=fmt, **options)
    return out_path


def load_rgb(path: str | os.PathLike | None) -> np.ndarray | None:
    """An image file as upright RGB uint8 (None when there is no file), for sheet tiles."""
    if path is None or not Path(path).is_file():
        return None
    return read_rgb(path)


def hit_caption(video_path: str, pts_time: float, distance: int) -> str:
    """The standard caption: file name, time (h:mm:ss.s), Hamming distance."""
    minutes, seconds = divmod(float(pts_time), 60)
    hours, minutes = divmod(int(minutes), 60)
    stamp = f"{hours}:{minutes:02d}:{seconds:04.1f}" if hours else f"{minutes}:{seconds:04.1f}"
    return f"{Path(video_path).name}\n{stamp}  d={distance}"
