"""Training data in the two layouts the paper's phases use.

* :class:`VOCSegmentation`: ``JPEGImages/``, ``SegmentationClass/`` (index or palette PNGs,
  255 = ignore), ``ImageSets/Segmentation/{train,val}.txt``, optional ``labels.txt``.
  Several roots can be merged into one label list (:func:`merged_voc`).
* :class:`ImageFolderSet`: ``<root>/<class>/<image>``, one label per image.

Both return RGB uint8 crops made by :func:`vidhash.transforms.center_crop_resize`, the
same function inference uses, so train and test pixels go through one code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vidhash.errors import InputError
from vidhash.media import read_rgb
from vidhash.transforms import center_crop_box, center_crop_resize

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm"}
VOC2012_LABELS = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]
IGNORE_INDEX = 255


def crop_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Center-crop a mask exactly like the image and resize it with nearest neighbour."""
    left, top, side, _ = center_crop_box(mask.shape[1], mask.shape[0])
    square = np.ascontiguousarray(mask[top : top + side, left : left + side])
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_NEAREST)


class Views:
    """``n_views`` crops of every item of a data set with a ``raw(i)`` method.

    View 0 is the plain center crop (what inference sees); the others are random square
    crops of 35-100% of the shorter side, anywhere in the frame, mirrored half of the
    time: seeded per (item, view), so a cache of them is reproducible. Masks (for
    segmentation) get the same crop with nearest-neighbour resizing.
    """

    def __init__(self, dataset, n_views: int, seed: int = 0, size: int = 224) -> None:
        self.dataset, self.n_views, self.seed, self.size = dataset, n_views, seed, size

    def __len__(self) -> int:
        return len(self.dataset) * self.n_views

    def _box(self, item: int, view: int, h: int, w: int) -> tuple[tuple[slice, slice], bool]:
        """The square crop (rows, columns) of view ``view`` of an h x w item, and its mirror."""
        if view == 0:
            left, top, side, _ = center_crop_box(w, h)
            flip = False
        else:
            rng = np.random.default_rng([self.seed, item, view])
            side = max(8, round(min(h, w) * rng.uniform(0.35, 1.0)))
            left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
            flip = bool(rng.random() < 0.5)
        return (slice(top, top + side), slice(left, left + side)), flip

    def _crop_mask(self, mask: np.ndarray, box: tuple[slice, slice], flip: bool) -> np.ndarray:
        square = _flip(mask[box], flip)
        return cv2.resize(square, (self.size, self.size), interpolation=cv2.INTER_NEAREST)

    def __getitem__(self, k: int):
        item, view = divmod(k, self.n_views)
        image, target = self.dataset.raw(item)
        box, flip = self._box(item, view, *image.shape[:2])
        crop = center_crop_resize(_flip(image[box], flip), self.size)
        if isinstance(target, np.ndarray):
            target = self._crop_mask(target, box, flip)
        return crop, target

    def mask(self, k: int) -> np.ndarray:
        """View ``k``'s mask alone: the image is not decoded (a mask has the image's size)."""
        item, view = divmod(k, self.n_views)
        mask = self.dataset.raw_mask(item)
        return self._crop_mask(mask, *self._box(item, view, *mask.shape[:2]))


def _flip(array: np.ndarray, flip: bool) -> np.ndarray:
    return np.ascontiguousarray(array[:, ::-1] if flip else array)


@dataclass
class VOCSegmentation:
    """One VOC-layout root, one split; masks remapped into a (possibly merged) label list."""

    root: Path
    split: str
    labels: list[str]
    lut: np.ndarray  # uint8[256]: this root's index -> merged index (255 stays 255)
    ids: list[str]
    size: int = 224

    @classmethod
    def open(cls, root: str | Path, split: str, size: int = 224) -> VOCSegmentation:
        root = Path(root)
        list_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not list_file.is_file():
            raise InputError(f"{root} is not a VOC-layout segmentation set: missing {list_file}")
        ids = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
        labels = read_voc_labels(root)
        lut = np.full(256, IGNORE_INDEX, np.uint8)
        lut[: len(labels)] = np.arange(len(labels), dtype=np.uint8)
        return cls(root, split, labels, lut, ids, size)

    def __len__(self) -> int:
        return len(self.ids)

    def raw_mask(self, i: int) -> np.ndarray:
        """The whole mask, remapped to the merged labels (the image is not read)."""
        with Image.open(self.root / "SegmentationClass" / f"{self.ids[i]}.png") as m:
            # Palette PNGs ('P') already hold class indices; never convert them to RGB.
            return self.lut[np.asarray(m if m.mode in ("P", "L") else m.convert("L"))]

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The whole image and its mask (remapped to the merged labels), uncropped."""
        image = read_rgb(self.root / "JPEGImages" / f"{self.ids[i]}.jpg")
        mask = self.raw_mask(i)
        if mask.shape[:2] != image.shape[:2]:
            raise InputError(f"{self.ids[i]}: mask {mask.shape} and image {image.shape} differ")
        return image, mask

    def mask(self, i: int) -> np.ndarray:
        """The center-cropped mask alone, as ``self[i][1]``."""
        return crop_mask(self.raw_mask(i), self.size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        image, mask = self.raw(i)
        return center_crop_resize(image, self.size), crop_mask(mask, self.size)


def read_voc_labels(root: Path) -> list[str]:
    """``labels.txt`` (one name a line, index order) or PASCAL VOC 2012's 21 classes."""
    labels_file = Path(root) / "labels.txt"
    if labels_file.is_file():
        return [ln.strip() for ln in labels_file.read_text().splitlines() if ln.strip()]
    return list(VOC2012_LABELS)


def merged_voc(roots: list[str | Path], split: str, size: int = 224) -> list[VOCSegmentation]:
    """Open several VOC roots with one merged label list (same name = same class)."""
    sets = [VOCSegmentation.open(r, split, size) for r in roots]
    merged: list[str] = []
    for ds in sets:
        merged += [name for name in ds.labels if name not in merged]
    for ds in sets:
        ds.lut[: len(ds.labels)] = [merged.index(n) for n in ds.labels]
        ds.labels = merged
    return sets


@dataclass
class ImageFolderSet:
    """``root/<class>/<image>``; ``limit_per_class`` takes the first N files (sorted) per class.

    Files are listed round-robin over the classes (class 0's first, class 1's first, ...).
    """

    root: Path
    classes: list[str]
    files: list[Path]
    targets: list[int]
    size: int = 224

    @classmethod
    def open(
        cls,
        root: str | Path,
        size: int = 224,
        limit_per_class: int | None = None,
        classes: list[str] | None = None,
    ) -> ImageFolderSet:
        root = Path(root)
        if not root.is_dir():
            raise InputError(f"image folder not found: {root}")
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        classes = classes or found
        if not classes:
            raise InputError(f"{root} has no class subfolders")
        per_class = []
        for name in classes:
            members = (
                sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                if (root / name).is_dir()
                else []
            )
            per_class.append(members[:limit_per_class] if limit_per_class else members)
        # Round-robin over classes: any prefix is class-balanced, and the first N per class
        # is a prefix of the first M > N per class, so chunked feature caches are shared.
        files, targets = [], []
        for rank in range(max(map(len, per_class), default=0)):
            for index, members in enumerate(per_class):
                if rank < len(members):
                    files.append(members[rank])
                    targets.append(index)
        if not files:
            raise InputError(f"{root} holds no images")
        return cls(root, list(classes), files, targets, size)

    def __len__(self) -> int:
        return len(self.files)

    def raw(self, i: int) -> tuple[np.ndarray, int]:
        """The whole image and its class index."""
        return read_rgb(self.files[i]), self.targets[i]

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return center_crop_resize(read_rgb(self.files[i]), self.size), self.targets[i]
