"""The ground truth the builtin model learns to draw: simple scenes, their pictures and captions.

A scene is a flat background with one or two flat shapes, each named by colour, shape, size and
position, so a caption says everything the picture shows and a checker can tell, from geometry
alone, whether a generated picture shows what its prompt asked for. `HELD_OUT` holds back 100
one-object combinations that training never shows: a model drawing them right has learnt to
combine words, not recalled pictures.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

# Far apart in RGB so a checker can name a colour back; the closest pair (yellow, orange) is ~71 apart.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "orange": (245, 140, 30),
    "purple": (140, 60, 190),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle", "star", "ring")
SIZES = ("small", "large")
POSITIONS = ("center", "top left", "top right", "bottom left", "bottom right")
CORNERS = POSITIONS[1:]

# The side of a shape's bounding box, as a fraction of the picture's side.
SIDE = {"small": 0.25, "large": 0.45}
# Centres, as fractions of the side: a large shape in a corner spans 0.055..0.505, inside the picture.
CENTRES = {
    "center": (0.5, 0.5),
    "top left": (0.28, 0.28),
    "top right": (0.72, 0.28),
    "bottom left": (0.28, 0.72),
    "bottom right": (0.72, 0.72),
}
# Two large shapes in corners side by side would overlap by 1 % of the side: they take opposite corners.
DIAGONALS = (
    ("top left", "bottom right"),
    ("bottom right", "top left"),
    ("top right", "bottom left"),
    ("bottom left", "top right"),
)
STAR_INNER = 0.45
RING_HOLE = 0.55
# Drawn this many times larger, then averaged down: smooth edges, the same bytes every time.
SUPERSAMPLE = 4


@dataclass(frozen=True, slots=True)
class Shape:
    shape: str
    colour: str
    size: str
    position: str


@dataclass(frozen=True, slots=True)
class Scene:
    background: str
    objects: tuple[Shape, ...]


def render(scene: Scene, size: int) -> Image.Image:
    """The scene as an RGB picture of `size` x `size` pixels."""
    canvas = size * SUPERSAMPLE
    image = Image.new("RGB", (canvas, canvas), COLOURS[scene.background])
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        _draw(draw, obj, canvas, COLOURS[scene.background])
    return image.resize((size, size), Image.Resampling.BOX)


def _draw(draw: ImageDraw.ImageDraw, obj: Shape, canvas: int, background: tuple[int, int, int]) -> None:
    fx, fy = CENTRES[obj.position]
    cx, cy, h = fx * canvas, fy * canvas, SIDE[obj.size] * canvas / 2
    fill = COLOURS[obj.colour]
    box = (cx - h, cy - h, cx + h, cy + h)
    if obj.shape == "circle":
        draw.ellipse(box, fill=fill)
    elif obj.shape == "square":
        draw.rectangle(box, fill=fill)
    elif obj.shape == "triangle":
        draw.polygon([(cx, cy - h), (cx + h, cy + h), (cx - h, cy + h)], fill=fill)
    elif obj.shape == "star":
        # Sized so its widest points touch the box's sides, and moved down so its top point and
        # its two lower points sit equally far from the box's top and bottom.
        outer = h / math.sin(math.radians(72))
        sy = cy + outer * (1 - math.cos(math.radians(36))) / 2
        points = []
        for k in range(10):
            radius = outer if k % 2 == 0 else outer * STAR_INNER
            angle = math.radians(-90 + 36 * k)
            points.append((cx + radius * math.cos(angle), sy + radius * math.sin(angle)))
        draw.polygon(points, fill=fill)
    elif obj.shape == "ring":
        draw.ellipse(box, fill=fill)
        r = h * RING_HOLE
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=background)
    else:
        raise ValueError(f"unknown shape {obj.shape!r}")


def caption(scene: Scene, rng: random.Random) -> str:
    """A prompt for the scene, worded a little differently each draw so the model learns words, not sentences."""
    bg = scene.background
    if len(scene.objects) == 1:
        obj = scene.objects[0]
        thing = f"{obj.colour} {obj.shape}"
        sized = f"{_size_word(obj.size, rng)} {thing}"
        templates: tuple[str, ...] = (
            f"{_a(sized)} on {_a(bg)} background, {_where(obj.position, rng)}",
            f"{_a(thing)} on {bg}, {_where(obj.position, rng)}",
            f"{sized}, {bg} background, {_in(obj.position, rng)}",
            f"{_a(sized)} {_in_corner(obj.position, rng)} of {_a(bg)} background",
            f"{_a(bg)} background with {_a(sized)} {_in(obj.position, rng)}",
        )
    else:
        first, second = (_object_phrase(obj, rng) for obj in scene.objects)
        p, q = (obj.position for obj in scene.objects)
        templates = (
            f"{first} {_where(p, rng)} and {second} {_where(q, rng)} on {_a(bg)} background",
            f"{_a(bg)} background with {first} {_in(p, rng)} and {second} {_in(q, rng)}",
            f"{first} {_in_corner(p, rng)} and {second} {_in_corner(q, rng)}, {bg} background",
        )
    return rng.choice(templates)


def _size_word(size: str, rng: random.Random) -> str:
    return rng.choice(("large", "big") if size == "large" else ("small", "little"))


def _object_phrase(obj: Shape, rng: random.Random) -> str:
    # The size is left out now and then, as people leave it out.
    size = _size_word(obj.size, rng) if rng.random() < 2 / 3 else ""
    return _a(" ".join(filter(None, (size, obj.colour, obj.shape))))


def _a(phrase: str) -> str:
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


def _middle(rng: random.Random) -> str:
    return rng.choice(("in the center", "in the middle"))


def _where(position: str, rng: random.Random) -> str:
    """The position as a bare tag ("top left"); the center reads better as a phrase."""
    return _middle(rng) if position == "center" else position


def _in(position: str, rng: random.Random) -> str:
    return _middle(rng) if position == "center" else f"in the {position}"


def _in_corner(position: str, rng: random.Random) -> str:
    return _middle(rng) if position == "center" else f"in the {position} corner"


def random_scene(rng: random.Random, *, two_objects: float = 0.3) -> Scene:
    """A scene of uniform choices; with probability `two_objects` it has two shapes in two corners."""
    background = rng.choice(tuple(COLOURS))
    if rng.random() >= two_objects:
        return Scene(background, (_random_shape(rng, background, rng.choice(SIZES), rng.choice(POSITIONS)),))
    sizes = (rng.choice(SIZES), rng.choice(SIZES))
    if sizes == ("large", "large"):
        positions = rng.choice(DIAGONALS)
    else:
        first = rng.choice(CORNERS)
        positions = (first, rng.choice([c for c in CORNERS if c != first]))
    return Scene(background, tuple(_random_shape(rng, background, s, p) for s, p in zip(sizes, positions)))


def _random_shape(rng: random.Random, background: str, size: str, position: str) -> Shape:
    colour = rng.choice([c for c in COLOURS if c != background])
    return Shape(rng.choice(SHAPES), colour, size, position)


def _held_out() -> tuple[Scene, ...]:
    """100 distinct one-object scenes: each shape 20 times, each background 12 or 13 times.

    Shapes and backgrounds are dealt from shuffled decks, not drawn, so every one of them is
    tested however the draws fall; colour, size and position are drawn.
    """
    rng = random.Random(13)
    count = 100
    shapes = list(SHAPES) * (count // len(SHAPES))
    backgrounds = list(COLOURS) * (count // len(COLOURS))
    backgrounds += rng.sample(list(COLOURS), count - len(backgrounds))
    rng.shuffle(shapes)
    rng.shuffle(backgrounds)
    chosen: dict[Scene, None] = {}
    for shape, background in zip(shapes, backgrounds):
        while True:
            colour = rng.choice([c for c in COLOURS if c != background])
            scene = Scene(background, (Shape(shape, colour, rng.choice(SIZES), rng.choice(POSITIONS)),))
            if scene not in chosen:
                break
        chosen[scene] = None
    return tuple(chosen)


HELD_OUT: tuple[Scene, ...] = _held_out()
_HELD_OUT_SET = frozenset(HELD_OUT)


def is_held_out(scene: Scene) -> bool:
    """Whether training must never show this scene; a two-object scene never is held out."""
    return scene in _HELD_OUT_SET


def random_training_scene(rng: random.Random, *, two_objects: float = 0.3) -> Scene:
    """`random_scene`, drawn again while it is held out (100 of 2,800 one-object scenes are)."""
    while True:
        scene = random_scene(rng, two_objects=two_objects)
        if not is_held_out(scene):
            return scene
