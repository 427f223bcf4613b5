"""The synthetic scenes and the checker: the checker passes every held-out ground truth, clean or
degraded, refuses pictures of nothing, and training never shows a held-out scene."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageFilter

from latentcast.server.training.checker import judge
from latentcast.server.training.scenes import (
    COLOURS,
    CORNERS,
    HELD_OUT,
    POSITIONS,
    SHAPES,
    SIZES,
    Scene,
    Shape,
    caption,
    is_held_out,
    random_scene,
    random_training_scene,
    render,
)

_renders: dict[int, list[Image.Image]] = {}


def renders(px: int) -> list[Image.Image]:
    """The held-out scenes drawn at `px`, drawn once for every test that needs them."""
    if px not in _renders:
        _renders[px] = [render(scene, px) for scene in HELD_OUT]
    return _renders[px]


def blur(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(2))


def noise(image: Image.Image, rng: np.random.Generator) -> np.ndarray:
    noisy = np.asarray(image, dtype=np.float32) + 12 * rng.standard_normal((image.height, image.width, 3), np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def blur_and_noise(image: Image.Image, rng: np.random.Generator) -> np.ndarray:
    return noise(blur(image, rng), rng)


@pytest.mark.parametrize("px", [256, 512])
def test_every_held_out_render_passes(px: int) -> None:
    failed = [(scene, v) for scene, image in zip(HELD_OUT, renders(px)) if not (v := judge(image, scene)).ok]
    assert failed == []


# Each alone at 256 px, where they weigh most; both at once at either size.
@pytest.mark.parametrize(("px", "degrade"), [(256, blur), (256, noise), (256, blur_and_noise), (512, blur_and_noise)])
def test_degraded_renders_still_pass(px: int, degrade: Callable[..., Image.Image | np.ndarray]) -> None:
    rng = np.random.default_rng(px)
    passed = sum(judge(degrade(image, rng), scene).ok for scene, image in zip(HELD_OUT, renders(px)))
    assert passed >= 98


@pytest.mark.parametrize("px", [64, 256, 512])
def test_pure_noise_passes_as_nothing(px: int) -> None:
    picture = np.random.default_rng(px).integers(0, 256, (px, px, 3), dtype=np.uint8)
    verdict = judge(picture, HELD_OUT[0])
    # No flat object of a named colour is found, so no prompt's object could match it.
    assert verdict.colour is None
    assert not verdict.ok


@pytest.mark.parametrize("colour", list(COLOURS))
def test_a_flat_picture_has_no_object(colour: str) -> None:
    verdict = judge(Image.new("RGB", (256, 256), COLOURS[colour]), HELD_OUT[0])
    assert (verdict.background, verdict.colour, verdict.shape) == (colour, None, None)
    assert not verdict.ok


def test_the_wrong_prompt_fails() -> None:
    scene = Scene("blue", (Shape("star", "red", "large", "center"),))
    image = render(scene, 256)
    assert judge(image, scene).ok
    assert not judge(image, Scene("blue", (Shape("circle", "red", "large", "center"),))).ok
    assert not judge(image, Scene("blue", (Shape("star", "orange", "large", "center"),))).ok
    assert not judge(image, Scene("green", (Shape("star", "red", "large", "center"),))).ok


def test_judge_takes_one_object_scenes_and_pictures_of_64_px_and_more() -> None:
    two = Scene("blue", (Shape("star", "red", "small", "top left"), Shape("ring", "white", "small", "bottom right")))
    with pytest.raises(ValueError):
        judge(render(two, 256), two)
    with pytest.raises(ValueError):
        judge(render(HELD_OUT[0], 32), HELD_OUT[0])


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text))


def test_captions_name_what_the_picture_shows_in_varied_words() -> None:
    rng = random.Random(0)
    for scene in HELD_OUT[:25]:
        obj = scene.objects[0]
        captions = {caption(scene, rng) for _ in range(20)}
        assert len(captions) >= 3
        for text in captions:
            assert text == text.lower() and text.isascii()
            assert {obj.colour, obj.shape, scene.background} <= words(text), text


def test_two_object_captions_name_both_objects() -> None:
    rng = random.Random(1)
    for _ in range(200):
        scene = random_scene(rng, two_objects=1.0)
        text = caption(scene, rng)
        assert {scene.background} | {word for obj in scene.objects for word in (obj.colour, obj.shape)} <= words(text)
        assert text == text.lower() and text.isascii()


def test_held_out_is_100_distinct_one_object_scenes_covering_every_shape_and_background() -> None:
    assert len(HELD_OUT) == len(set(HELD_OUT)) == 100
    assert all(len(scene.objects) == 1 and scene.objects[0].colour != scene.background for scene in HELD_OUT)
    assert all(is_held_out(scene) for scene in HELD_OUT)
    shapes = Counter(scene.objects[0].shape for scene in HELD_OUT)
    backgrounds = Counter(scene.background for scene in HELD_OUT)
    assert set(shapes) == set(SHAPES) and min(shapes.values()) >= 15
    assert set(backgrounds) == set(COLOURS) and min(backgrounds.values()) >= 8


def test_training_never_shows_a_held_out_scene_yet_shows_every_word() -> None:
    rng = random.Random(2)
    held_out = set(HELD_OUT)
    scenes = [random_training_scene(rng) for _ in range(20_000)]
    assert not held_out & set(scenes)
    objects = [obj for scene in scenes for obj in scene.objects]
    assert {obj.shape for obj in objects} == set(SHAPES)
    assert {obj.colour for obj in objects} == {scene.background for scene in scenes} == set(COLOURS)
    assert {obj.size for obj in objects} == set(SIZES)
    assert {obj.position for obj in objects} == set(POSITIONS)
    two = [scene for scene in scenes if len(scene.objects) == 2]
    assert 0.25 < len(two) / len(scenes) < 0.35
    for scene in two:
        first, second = scene.objects
        assert {first.position, second.position} <= set(CORNERS) and first.position != second.position
        assert scene.background not in (first.colour, second.colour)
        if first.size == second.size == "large":  # opposite corners, or they would overlap
            assert first.position.split()[0] != second.position.split()[0]
            assert first.position.split()[1] != second.position.split()[1]


def test_render_is_deterministic_rgb_of_the_asked_size() -> None:
    scene = random_scene(random.Random(3), two_objects=1.0)
    first, second = render(scene, 200), render(scene, 200)
    assert (first.mode, first.size) == ("RGB", (200, 200))
    assert first.tobytes() == second.tobytes()
