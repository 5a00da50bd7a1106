"""Contact sheets: the query beside a grid of its results, captioned, optionally marked.

Used by ``vidhash search --sheet`` and by the evaluation reports (where each result is
marked a hit or a miss with a green or red border). Drawn with PIL: no figure machinery
is needed for a grid of thumbnails, and it stays fast for hundreds of sheets.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vidhash.fsutil import atomic_path
from vidhash.media import read_rgb

TILE = 160
PAD = 8
CAPTION_LINES = 3
BORDER = 5
LINE_HEIGHT = 15  # of a caption line
CELL_W = TILE + 2 * PAD
CELL_H = TILE + 2 * PAD + CAPTION_LINES * LINE_HEIGHT
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
    columns = max(1, min(columns, len(results) or 1))
    rows = max(1, -(-len(results) // columns))
    query_w = CELL_W + PAD if query_image is not None or not results else 0
    title_h = 30 if title else 0
    sheet = Image.new("RGB", (query_w + columns * CELL_W, title_h + rows * CELL_H), BACKGROUND)
    canvas = _Canvas(sheet, ImageDraw.Draw(sheet), _font(12))
    if title:
        canvas.title(title, _font(16))
    if query_w:
        canvas.place((0, title_h), query_image, query_caption, QUERY_COLOUR)
        canvas.draw.line(
            (query_w - PAD // 2, title_h, query_w - PAD // 2, sheet.height),
            fill=(200, 200, 200),
            width=1,
        )
    for i, (image, caption, mark) in enumerate(results):
        row, col = divmod(i, columns)
        colour = None if mark is None else (HIT_COLOUR if mark else MISS_COLOUR)
        canvas.place((query_w + col * CELL_W, title_h + row * CELL_H), image, caption, colour)
    with atomic_path(out_path) as tmp:
        options = {"quality": 90} if fmt in ("JPEG", "WEBP") else {}
        sheet.save(tmp, format=fmt, **options)
    return out_path


@dataclass
class _Canvas:
    """A sheet being drawn; the caption font is loaded once for all its cells."""

    sheet: Image.Image
    draw: ImageDraw.ImageDraw
    font: ImageFont.ImageFont

    def title(self, title: str, font: ImageFont.ImageFont) -> None:
        """The title across the top, its start cut (not its end) when it is too wide."""
        self.draw.text(
            (PAD, 7),
            _fit_line(self.draw, title, font, self.sheet.width - 2 * PAD),
            fill=TEXT_COLOUR,
            font=font,
        )

    def place(
        self,
        origin: tuple[int, int],
        image: np.ndarray | None,
        caption: str,
        colour: tuple[int, int, int] | None,
    ) -> None:
        """One cell at ``origin``: the thumbnail, its border (if ``colour``), its caption."""
        x, y = origin
        self.sheet.paste(_thumbnail(image, TILE), (x + PAD, y + PAD))
        if colour is not None:
            self.draw.rectangle(
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
            self.draw.text(
                (x + PAD, y + TILE + PAD + 4 + n * LINE_HEIGHT),
                _fit_line(self.draw, line, self.font, TILE),
                fill=TEXT_COLOUR,
                font=self.font,
            )


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
