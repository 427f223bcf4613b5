"""The live page on the model `latentcast serve` runs by default: a prompt it knows, typed into the
form, forms on the canvas step by step and ends as a picture of that prompt's colours.

Its screenshots, mid-run and done, are the README's and docs/pages.md's (UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.async_api import expect

from latentcast.server.training.checker import judge
from latentcast.server.training.judging import held_out_prompts
from tests.pages.helpers import fill_form, screenshot
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
