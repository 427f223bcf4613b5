"""The live page on the model `latentcast serve` runs by default: a prompt it knows, typed into the
form, forms on the canvas step by step and ends as a picture of that prompt's colours; a picture of
its kind, with a mask painted over its shape, is repainted there.

Its screenshots, mid-run and done, are the README's and docs/pages.md's (UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from playwright.async_api import expect

from latentcast.server.training.checker import judge
from latentcast.server.training.judging import held_out_prompts
from tests.pages.helpers import PHONE, fill_form, screenshot, set_range
from tests.support import ServerProcess

# A held-out prompt (never trained on), with its index as the seed, as the model's judge draws it
HELD_OUT_INDEX = 3


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`latentcast serve` with no `--model`: the builtin that draws."""
    server = ServerProcess(tmp_path_factory.mktemp("shapes"), model=None).start()
    yield server
    server.stop()


async def test_a_prompt_the_model_knows_forms_on_the_page_in_its_colours(
    default_server: ServerProcess, new_page, tmp_path: Path
) -> None:
    scene, prompt = held_out_prompts(HELD_OUT_INDEX + 1)[HELD_OUT_INDEX]
    page = await new_page()
    await page.goto(default_server.base_url + "/")
    # the page says what the builtin draws, and offers prompts it can
    await expect(page.get_by_label("Prompt", exact=True)).to_have_attribute("placeholder", re.compile("circle"))
    await expect(page.locator("#model-note")).to_contain_text("builtin:shapes draws simple scenes")
    await expect(page.locator("#model-note")).to_contain_text("--model PATH` serves real SD3 weights")

    await fill_form(page, prompt, size="256x256", steps=28, seed=HELD_OUT_INDEX)
    await page.get_by_role("button", name="Generate").click()
    await expect(page.locator("#preview")).to_have_attribute("data-frames", re.compile(r"^([6-9]|\d\d+)$"))
    await screenshot(page, "live-running-wide", tmp_path)
    await expect(page.locator("#status")).to_have_attribute("data-status", "completed")
    image = page.locator("#gallery figure img")
    await expect(image).to_have_js_property("naturalWidth", 256)
    await screenshot(page, "live-done-wide", tmp_path)

    # the picture the page shows is the prompt's: its background and its object's colour
    response = await page.request.get(await image.get_attribute("src"))
    assert response.status == 200
    verdict = judge(Image.open(io.BytesIO(await response.body())), scene)
    assert (verdict.background_ok, verdict.colour_ok) == (True, True), (prompt, verdict)


async def test_a_shape_painted_over_is_repainted_on_the_page(default_server: ServerProcess, new_page, tmp_path: Path) -> None:
    """The docs' inpainting screenshots: a scene the model draws, its shape masked and repainted."""
    scene = Image.new("RGB", (256, 256), (30, 60, 190))
    ImageDraw.Draw(scene).ellipse((24, 24, 120, 120), fill=(220, 40, 40))
    picture = io.BytesIO()
    scene.save(picture, format="PNG")
    page = await new_page()
    await page.goto(default_server.base_url + "/")
    await fill_form(page, "a large yellow circle on a blue background, top left", size="256x256", steps=28, seed=7)
    await page.get_by_label("Pick an image").set_input_files(
        files=[{"name": "scene.png", "mimeType": "image/png", "buffer": picture.getvalue()}]
    )
    await set_range(page, "#strength", "0.8")
    await set_range(page, "#brush", "56")
    box = await page.locator("#mask").bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + 0.15 * box["width"], box["y"] + 0.28 * box["height"])
    await page.mouse.down()
    for fx, fy in [(0.42, 0.18), (0.42, 0.38), (0.15, 0.42), (0.28, 0.28)]:
        await page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"], steps=6)
    await page.mouse.up()
    await expect(page.locator("#mask")).to_have_attribute("data-painted", "true")

    await page.get_by_role("button", name="Generate").click()
    await expect(page.locator("#preview")).to_have_attribute("data-frames", re.compile(r"^([6-9]|\d\d+)$"))
    await expect(page.locator("#stat-step")).to_contain_text("/23")  # ceil(0.8 x 28) steps
    await expect(page.locator("#status")).to_have_attribute("data-status", "completed")
    figures = page.locator("#gallery figure")
    await expect(figures).to_have_count(3)
    for index in range(3):
        await expect(figures.nth(index).locator("img")).to_have_js_property("naturalWidth", 256)
    await screenshot(page, "live-inpaint-wide", tmp_path)
    await page.set_viewport_size(PHONE)
    await page.locator("#input-editor").scroll_into_view_if_needed()
    await screenshot(page, "live-inpaint-phone", tmp_path, full_page=False)
