"""Image to image and inpainting on the live page: a picture picked, a mask painted over it with
the pointer (brush size, erase, clear), the task watched step by step, its input shown beside the
result on the page and its share link, and image tasks marked in the history and the dashboard."""

from __future__ import annotations

import io
import re
from pathlib import Path

from PIL import Image
from playwright.async_api import Page, expect

from tests.pages.helpers import (
    LIFECYCLE,
    PHONE,
    canvas_samples,
    fill_form,
    set_range,
    start_canvas_sampler,
    timeline_titles,
)
from tests.support import ServerProcess

OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def picture_png(side: int) -> bytes:
    """A picture with something to keep or change: a red square on a blue ground."""
    picture = Image.new("RGB", (side, side), (40, 70, 200))
    picture.paste((220, 40, 40), (side // 4, side // 4, 3 * side // 4, 3 * side // 4))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


async def pick_picture(page: Page, side: int) -> None:
    await page.get_by_label("Pick an image").set_input_files(
        files=[{"name": "square.png", "mimeType": "image/png", "buffer": picture_png(side)}]
    )
    await expect(page.locator("#input-editor")).to_be_visible()
    await expect(page.locator("#input-size")).to_have_text(f"{side}×{side}")


async def small_task(page: Page, prompt: str, *, steps: int, side: int = 64) -> None:
    await fill_form(page, prompt, size="256x256", steps=steps)
    await page.get_by_label("Width").fill(str(side))
    await page.get_by_label("Height").fill(str(side))


async def stroke(page: Page, y: float, x_from: float, x_to: float) -> None:
    """Drag the pointer across the mask, at fractions of the picture's size as shown."""
    box = await page.locator("#mask").bounding_box()
    assert box is not None
    at = lambda fx, fy: (box["x"] + fx * box["width"], box["y"] + fy * box["height"])  # noqa: E731
    await page.mouse.move(*at(x_from, y))
    await page.mouse.down()
    await page.mouse.move(*at(x_to, y), steps=12)
    await page.mouse.up()


async def read_input(page: Page, url: str, token: str) -> Image.Image:
    response = await page.request.get(f"{url}?token={token}")
    assert response.status == 200, await response.text()
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(await response.body()))


async def test_a_mask_painted_on_a_phone_is_the_one_the_task_repaints(server: ServerProcess, new_page) -> None:
    page = await new_page(viewport=PHONE)
    await page.goto(server.base_url + "/")
    await small_task(page, "a yellow star where the square was", steps=8)
    # no picture: nothing about one is shown
    await expect(page.locator("#input-editor")).to_be_hidden()
    await expect(page.get_by_label("Strength")).to_be_hidden()
    await pick_picture(page, 128)
    await expect(page.locator("#mask")).to_have_attribute("data-painted", "false")
    await expect(page.get_by_role("button", name="Clear mask")).to_be_disabled()

    # the picture shows its size on a phone's width; the brush is sized on screen
    await set_range(page, "#brush", "20")
    await expect(page.locator("#brush-value")).to_have_text("20 px")
    await stroke(page, 0.25, 0.1, 0.9)
    await expect(page.locator("#mask")).to_have_attribute("data-painted", "true")
    await page.get_by_role("button", name="Clear mask").click()
    await expect(page.locator("#mask")).to_have_attribute("data-painted", "false")
    await expect(page.get_by_role("button", name="Clear mask")).to_be_disabled()

    # a stroke, then the eraser through its middle
    await stroke(page, 0.75, 0.05, 0.95)
    await page.get_by_text("Erase", exact=True).click()
    await set_range(page, "#brush", "40")
    await stroke(page, 0.75, 0.42, 0.58)
    assert await page.evaluate(OVERFLOW) <= 0, "the page is wider than the phone"

    await set_range(page, "#strength", "0.5")
    await expect(page.locator("#strength-value")).to_have_text("0.50")
    await expect(page.locator("#strength-hint")).to_contain_text("Runs the last 4 of 8 steps")
    await page.get_by_role("button", name="Generate").click()
    await expect(page.locator("#status")).to_have_attribute("data-status", "completed")
    await expect(page.locator("#stat-step")).to_have_text("4/4")  # the steps run at that strength

    # the task keeps the mask as painted, fitted to its 64 px: white where painted, black where
    # erased, cleared, or never painted
    detail = await (await page.request.get(server.base_url + "/v1/tasks/" + page.url.split("/t/")[1].split("?")[0])).json()
    token = page.url.split("token=")[1]
    assert detail["input"]["strength"] == 0.5
    mask = (await read_input(page, detail["input"]["mask"], token)).convert("L")
    assert mask.size == (64, 64)
    value = lambda fx, fy: mask.getpixel((int(fx * 64), int(fy * 64)))  # noqa: E731
    assert value(0.15, 0.75) > 200 and value(0.85, 0.75) > 200, "painted"
    assert value(0.5, 0.75) < 50, "erased"
    assert value(0.5, 0.25) < 50, "cleared"
    assert value(0.5, 0.5) < 50 and value(0.5, 0.02) < 50, "never painted"

    # the input and the mask are shown beside the result
    figures = page.locator("#gallery figure")
    await expect(figures).to_have_count(3)
    await expect(figures.nth(0)).to_contain_text("Input · Inpaint · strength 0.50")
    await expect(figures.nth(1)).to_contain_text("Mask")
    for index in range(3):
        await figures.nth(index).scroll_into_view_if_needed()
        await expect(figures.nth(index).locator("img")).to_have_js_property("naturalWidth", 64)
    assert await page.evaluate(OVERFLOW) <= 0, "the page is wider than the phone"


async def test_an_image_task_changes_step_by_step_and_its_link_shows_the_input(
    server: ServerProcess, new_page, tmp_path: Path
) -> None:
    page = await new_page()
    await page.goto(server.base_url + "/")
    # 256 px and 30 steps run: long enough for the page to paint several previews while it runs
    await small_task(page, "the square, repainted", steps=40, side=256)
    await pick_picture(page, 256)
    await set_range(page, "#strength", "0.75")
    await expect(page.locator("#strength-hint")).to_contain_text("Runs the last 30 of 40 steps")
    await start_canvas_sampler(page, "#preview", "#status[data-status=running]")
    await page.get_by_role("button", name="Generate").click()

    await expect(page).to_have_url(re.compile(r"/t/[0-9a-f]+\?token=[\w-]+$"))
    await expect(page.locator("#status")).to_have_attribute("data-status", "completed")
    # the preview changed with the steps while the task ran, as any task's does
    assert await canvas_samples(page) >= 3
    assert int(await page.locator("#preview").get_attribute("data-frames")) >= 3
    await expect(page.locator("#stat-step")).to_have_text("30/30")
    assert await timeline_titles(page) == LIFECYCLE
    figures = page.locator("#gallery figure")
    await expect(figures).to_have_count(2)  # the input, then the result
    await expect(figures.first).to_contain_text("Input · Image to image · strength 0.75")
    await expect(figures.last).to_contain_text("Seed")

    # the share link, in another browser: the input beside the result, the form ready to run it again
    later = await new_page()
    await later.goto(page.url)
    await expect(later.locator("#status")).to_have_attribute("data-status", "completed")
    later_figures = later.locator("#gallery figure")
    await expect(later_figures).to_have_count(2)
    await expect(later_figures.first.locator("img")).to_have_js_property("naturalWidth", 256)
    await expect(later_figures.last.locator("img")).to_have_js_property("naturalWidth", 256)
    await expect(later.locator("#input-size")).to_have_text("256×256")
    await expect(later.locator("#input-image")).to_have_js_property("naturalWidth", 256)
    await expect(later.locator("#strength-value")).to_have_text("0.75")
    await expect(later.locator("#mask")).to_have_attribute("data-painted", "false")

    # the history and the dashboard mark it as an image task
    task_id = page.url.split("/t/")[1].split("?")[0]
    await expect(page.locator(f'#history .history-item[data-id="{task_id}"] .kind-tag')).to_have_text("Image to image")
    dashboard = await new_page()
    await dashboard.goto(server.base_url + "/dashboard")
    tag = dashboard.locator(f'.recent-card[data-id="{task_id}"] .kind-tag')
    await expect(tag).to_have_text("Image to image")
    await expect(tag).to_have_attribute("title", "Starts from an input image, strength 0.75")
