"""Whether a picture shows the one-object scene its prompt asked for, judged from geometry alone.

No model judges the model: the background is named from the picture's border, the object is the
largest region standing out from it, its colour is named from its inner pixels, and its shape
from how it fills its bounding box and its convex hull and whether it has a hole. Every measure
used is unchanged by stretching along the axes, so the picture is first averaged down to a fixed
`WORK` x `WORK` grid whatever its size or aspect: the judging costs the same for every size, and
noise averages out on the way.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
from PIL import Image

from latentcast.server.training.scenes import COLOURS, Scene

WORK = 128
BORDER = 0.04
# Half the RGB distance between the closest named colours (yellow and orange, ~71), so an object
# stands out from any background, and far above the distance noise of sigma 12 reaches once averaged.
OBJECT_DISTANCE = 35.0
# Below 1 % of the picture a region is a speck, not a shape (a small star covers ~2.4 %).
MIN_AREA = 0.01
ERODE = 2
# A colour farther than this from every named one is none of them, not the least wrong of them.
MAX_COLOUR_DISTANCE = 80.0
# A flat object: at least half of its inner pixels near their median (pure noise has ~5 % there).
FLAT_DISTANCE = 60.0
FLAT_SHARE = 0.5

_NAMES = tuple(COLOURS)
_PALETTE = np.array([COLOURS[name] for name in _NAMES], dtype=np.float32)
_EIGHT = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


@dataclass(frozen=True, slots=True)
class Verdict:
    background: str
    colour: str | None
    shape: str | None
    background_ok: bool
    colour_ok: bool
    shape_ok: bool

    @property
    def ok(self) -> bool:
        return self.background_ok and self.colour_ok and self.shape_ok


def judge(image: Image.Image | np.ndarray, expected: Scene) -> Verdict:
    """The picture's background, object colour and shape, each checked against `expected`'s.

    `colour` and `shape` are None when no object stands out, and also when the object's colour
    is no named one or its outline no known shape: a checker says "not what was asked" rather
    than guess.
    """
    if len(expected.objects) != 1:
        raise ValueError(f"judge checks one-object scenes, this one has {len(expected.objects)}")
    pixels = _work_pixels(image)
    background, background_rgb = _background(pixels)
    from_background = np.linalg.norm(pixels - background_rgb, axis=2)
    obj = _largest_component(from_background > OBJECT_DISTANCE)
    colour: str | None = None
    shape: str | None = None
    if obj.sum() >= MIN_AREA * obj.size:
        colour, colour_rgb = _colour(pixels, obj)
        # Outlined again where pixels are nearer the object's colour than the background's: a
        # blurred edge crosses that line where the sharp edge was, so blur neither grows the
        # shape (filling a star's notches) nor shrinks it, whatever the two colours are.
        obj = _largest_component(np.linalg.norm(pixels - colour_rgb, axis=2) < from_background)
        # Checked again: the median of a scattered region (noise) can sit near the background.
        if obj.sum() >= MIN_AREA * obj.size:
            shape = _shape(obj)
    want = expected.objects[0]
    return Verdict(
        background, colour, shape, background == expected.background, colour == want.colour, shape == want.shape
    )


def psnr(preview: Image.Image, final: Image.Image, side: int) -> float:
    """How close a preview is to the final picture, in dB: both reduced (box filter) to `side` x
    `side`, the latents' resolution, which is all the detail a `latent2rgb` preview has."""
    x = np.asarray(preview.convert("RGB").resize((side, side), Image.Resampling.BOX), dtype=np.float64)
    y = np.asarray(final.convert("RGB").resize((side, side), Image.Resampling.BOX), dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _work_pixels(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if min(image.size) < 64:
        raise ValueError(f"a picture of at least 64 x 64 pixels is needed, not {image.size[0]} x {image.size[1]}")
    work = image.convert("RGB").resize((WORK, WORK), Image.Resampling.BOX)
    return np.asarray(work, dtype=np.float32)


def _nearest(rgb: np.ndarray) -> np.ndarray:
    """The index of the nearest named colour for each RGB row."""
    return np.argmin(np.linalg.norm(rgb[:, None, :] - _PALETTE[None, :, :], axis=2), axis=1)


def _background(pixels: np.ndarray) -> tuple[str, np.ndarray]:
    """The border frame's most common named colour, and the mean RGB of the frame's pixels of it.

    The mean is of those pixels only, so an object reaching into the frame does not shift it.
    """
    edge = max(1, round(BORDER * WORK))
    frame = np.ones((WORK, WORK), dtype=bool)
    frame[edge:-edge, edge:-edge] = False
    rgb = pixels[frame]
    nearest = _nearest(rgb)
    index = Counter(nearest.tolist()).most_common(1)[0][0]
    return _NAMES[index], rgb[nearest == index].mean(axis=0)


def _colour(pixels: np.ndarray, obj: np.ndarray) -> tuple[str | None, np.ndarray]:
    """The object's named colour, if it has one, and the median RGB of its inner pixels."""
    # Inner pixels only: the edges blend into the background.
    inner = _erode(obj, ERODE)
    rgb = pixels[inner if inner.any() else obj]
    median = np.median(rgb, axis=0)
    index = _nearest(median[None, :])[0]
    flat = np.mean(np.linalg.norm(rgb - median, axis=1) <= FLAT_DISTANCE) >= FLAT_SHARE
    named = np.linalg.norm(median - _PALETTE[index]) <= MAX_COLOUR_DISTANCE
    return (_NAMES[index] if flat and named else None), median


def _shape(obj: np.ndarray) -> str | None:
    """The shape named by the region's fill of its box, its solidity, its hole and its profile.

    Expected on the ground truth: square fill 1.0, circle 0.785, triangle 0.5, star 0.38 (blur
    takes a small one to ~0.5); solidity 1.0 for all but the star (0.56); the ring is a circle
    with a hole around its centre. The bounds sit midway between neighbours.
    """
    ys, xs = np.nonzero(obj)
    if ys.min() == 0 or xs.min() == 0 or ys.max() == WORK - 1 or xs.max() == WORK - 1:
        return None  # cut off by the picture's edge, so its outline says nothing
    region = obj[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    holes = _holes(region)
    filled = region | holes
    area = int(filled.sum())
    fill = area / filled.size
    solidity = area / _hull_area(filled)
    fy, fx = np.nonzero(filled)
    centre = round(fy.mean()), round(fx.mean())
    if holes[centre] and holes.sum() >= 0.1 * area:
        return "ring" if 0.65 <= fill < 0.9 and solidity >= 0.85 else None
    if solidity < 0.75:
        return "star" if 0.25 <= fill <= 0.6 else None
    if solidity < 0.85:
        return None
    if fill >= 0.9:
        return "square"
    if fill >= 0.65:
        return "circle"
    if fill >= 0.4 and _widens_downwards(filled):
        return "triangle"
    return None


def _widens_downwards(region: np.ndarray) -> bool:
    """Whether the bottom third is at least twice as wide as the top third (a triangle's is ~5x)."""
    widths = region.sum(axis=1)
    third = max(1, len(widths) // 3)
    return widths[-third:].mean() >= 2 * widths[:third].mean()


def _erode(mask: np.ndarray, times: int) -> np.ndarray:
    for _ in range(times):
        padded = np.pad(mask, 1)
        out = mask.copy()
        for dy, dx in _EIGHT:
            out &= padded[1 + dy : 1 + dy + mask.shape[0], 1 + dx : 1 + dx + mask.shape[1]]
        mask = out
    return mask


def _flood(flat: list[bool], start: int, offsets: tuple[int, ...]) -> list[int]:
    """The indices reachable from `start` through True cells, which it sets False as it goes.

    `flat` is a padded grid flattened, its outer ring False, so no neighbour falls off it.
    """
    flat[start] = False
    found = [start]
    for index in found:
        for offset in offsets:
            neighbour = index + offset
            if flat[neighbour]:
                flat[neighbour] = False
                found.append(neighbour)
    return found


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected region of the mask."""
    padded = np.pad(mask, 1)
    width = padded.shape[1]
    flat = padded.ravel().tolist()
    offsets = tuple(dy * width + dx for dy, dx in _EIGHT)
    largest: list[int] = []
    for start in np.flatnonzero(padded).tolist():
        if flat[start]:
            found = _flood(flat, start, offsets)
            if len(found) > len(largest):
                largest = found
    out = np.zeros(padded.size, dtype=bool)
    out[largest] = True
    return out.reshape(padded.shape)[1:-1, 1:-1]


def _holes(region: np.ndarray) -> np.ndarray:
    """The cells outside the region that the outside cannot reach, 4-connected.

    4-connected since the region is 8-connected: background cells touching only at a corner
    are separated by it.
    """
    # One ring of outside all round, then the False guard ring `_flood` needs.
    outside = np.pad(np.pad(~region, 1, constant_values=True), 1)
    width = outside.shape[1]
    flat = outside.ravel().tolist()
    reached = np.zeros(outside.size, dtype=bool)
    reached[_flood(flat, width + 1, (-width, -1, 1, width))] = True
    return ~region & ~reached.reshape(outside.shape)[2:-2, 2:-2]


def _hull_area(region: np.ndarray) -> float:
    """The area of the convex hull of the region's pixels, taken as unit squares.

    Only each row's outermost pixels can be on the hull, so only their outer corners are hulled
    (Andrew's monotone chain), then measured with the shoelace formula.
    """
    points: set[tuple[int, int]] = set()
    for y, row in enumerate(region):
        xs = np.flatnonzero(row)
        if len(xs):
            left, right = int(xs[0]), int(xs[-1]) + 1
            points.update(((left, y), (left, y + 1), (right, y), (right, y + 1)))
    ordered = sorted(points)

    def half(chain_points: list[tuple[int, int]]) -> list[tuple[int, int]]:
        chain: list[tuple[int, int]] = []
        for p in chain_points:
            while len(chain) >= 2 and _cross(chain[-2], chain[-1], p) <= 0:
                chain.pop()
            chain.append(p)
        return chain[:-1]

    hull = half(ordered) + half(ordered[::-1])
    return 0.5 * abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(hull, hull[1:] + hull[:1])))


def _cross(o: tuple[int, int], a: tuple[int, int], b: tuple[int, int]) -> int:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
