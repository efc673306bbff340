"""Server-side pictures for the review page: object thumbnails with the mask outlined, mask
overlays and the whole image, each encoded once and kept in a small LRU cache.

Pixels come from the registry over gRPC (GetSourceImage): the review app reads no file of the
registry's. A source registered without its image (GetSourceImage answers FAILED_PRECONDITION)
or whose bytes do not decode to the source's size is shown as a grey canvas of that size, so
boxes and masks still show.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter, ImageOps

__all__ = [
    "Picture",
    "PictureCache",
    "class_color",
    "decode_image",
    "frame_jpeg",
    "grey_canvas",
    "mask_overlay",
    "thumbnail",
]

_OUTLINE = (255, 208, 0)
_BOX = (0, 200, 255)
_MARGIN = 0.15  # of the box's size, around a thumbnail's crop: some context
_MAX_FRAME_SIDE = 2048
_JPEG_QUALITY = 85


@dataclass(frozen=True)
class Picture:
    """Encoded bytes, their media type, and their entity tag."""

    data: bytes
    media_type: str

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.data).hexdigest()[:32] + '"'


class PictureCache:
    """The last `capacity` pictures by key (object, version, size): an LRU, thread-safe."""

    def __init__(self, capacity: int = 2048) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[object, ...], Picture] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def peek(self, key: tuple[object, ...]) -> Picture | None:
        """The picture under `key` if cached (counted as a hit), else None."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
            return found

    def get_or_make(self, key: tuple[object, ...], make: Callable[[], Picture]) -> Picture:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return found
        picture = make()  # outside the lock: two misses of one key both draw, harmlessly
        with self._lock:
            self.misses += 1
            self._items[key] = picture
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return picture


def grey_canvas(width: int, height: int) -> Image.Image:
    """What stands in for an image the registry does not hold: grey, the source's size."""
    return Image.new("RGB", (max(width, 1), max(height, 1)), (96, 96, 96))


def decode_image(data: bytes, width: int, height: int) -> Image.Image:
    """The upright RGB image encoded in `data`, or a grey canvas when it is not an image of
    the source's size (`width` x `height`)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return grey_canvas(width, height)
    return upright if upright.size == (width, height) else grey_canvas(width, height)


def _encode(image: Image.Image, fmt: str) -> Picture:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, format="JPEG", quality=_JPEG_QUALITY)
        return Picture(buffer.getvalue(), "image/jpeg")
    image.save(buffer, format="PNG", optimize=False)
    return Picture(buffer.getvalue(), "image/png")


def _mask_image(png: bytes, size: tuple[int, int]) -> Image.Image | None:
    if not png:
        return None
    try:
        mask = Image.open(io.BytesIO(png)).convert("L")
    except (OSError, ValueError):
        return None
    return mask if mask.size == size else mask.resize(size)


def thumbnail(
    image: Image.Image,
    bbox: tuple[float, float, float, float],
    mask_png: bytes,
    size: int,
) -> Picture:
    """The object's crop (with some context), its mask outlined, fitted in size x size."""
    x, y, w, h = bbox
    mx, my = w * _MARGIN + 2, h * _MARGIN + 2
    left, top = max(int(x - mx), 0), max(int(y - my), 0)
    right, bottom = min(int(x + w + mx + 1), image.width), min(int(y + h + my + 1), image.height)
    crop = image.crop((left, top, max(right, left + 1), max(bottom, top + 1))).convert("RGB")
    mask = _mask_image(mask_png, image.size)
    draw = ImageDraw.Draw(crop)
    if mask is not None:
        edge = mask.crop((left, top, left + crop.width, top + crop.height))
        edge = edge.point(lambda v: 255 if v else 0).filter(ImageFilter.FIND_EDGES)
        edge = edge.filter(ImageFilter.MaxFilter(3))
        crop.paste(_OUTLINE, mask=edge)
    else:
        draw.rectangle((x - left, y - top, x - left + w, y - top + h), outline=_BOX, width=2)
    crop.thumbnail((size, size))
    return _encode(crop, "JPEG")


def mask_overlay(mask_png: bytes, size: tuple[int, int], color: tuple[int, int, int]) -> Picture:
    """A transparent PNG the size of the image: the mask filled half-opaque in `color`."""
    mask = _mask_image(mask_png, size)
    overlay = Image.new("RGBA", size, (0, 0, 0, 0))
    if mask is not None:
        alpha = mask.point(lambda v: 110 if v else 0)
        overlay.paste((*color, 255), mask=mask.point(lambda v: 255 if v else 0))
        overlay.putalpha(alpha)
    return _encode(overlay, "PNG")


def frame_jpeg(image: Image.Image) -> Picture:
    """The whole image as JPEG, at most _MAX_FRAME_SIDE on its longer side (the page scales
    boxes by the source's real size)."""
    copy = image.copy()
    copy.thumbnail((_MAX_FRAME_SIDE, _MAX_FRAME_SIDE))
    return _encode(copy, "JPEG")


def class_color(category: str) -> tuple[int, int, int]:
    """A stable colour per category, the same the page uses (hue from the name's hash)."""
    digest = hashlib.sha256(category.encode()).digest()
    hue = digest[0] / 255
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)
