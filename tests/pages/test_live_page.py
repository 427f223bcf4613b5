"""The live-preview page (`/`, `/t/{id}?token=`) in Chromium against the real server."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Page, expect

from tests.pages.helpers import (
    LIFECYCLE,
    assert_drawn_smoothly,
    cancel_task,
    canvas_samples,
    create_task,
    fill_form,
    preview_paints,
    start_canvas_sampler,
    timeline_titles,
    watch_preview_paints,
)
from tests.support import ServerProcess


async def test_form_submit_streams_previews_into_the_canvas_and_ends_in_the_gallery(
    server: ServerProcess, new_page
) -> None:
    page = await new_page()
    await page.goto(server.base_url + "/")
    await expect(page.get_by_role("button", name="Generate")).to_be_enabled()
    await fill_form(page, "a red fox in fresh snow, golden hour", size="256x256", steps=20, seed=1234)
    await expect(page.locator("#steps-value")).to_have_text("20")
    await start_canvas_sampler(page, "#preview", "#status[data-status=running]")
    await page.get_by_role("button", name="Generate").click()

    # the address becomes the share link; a second browser opens it at once (while the task runs,
    # unless the machine is very fast: then it gets the replay)
    await expect(page).to_have_url(re.compile(r"/t/[0-9a-f]+\?token=[\w-]+$"))
    share_link = await page.locator("#share-link").input_value()
    assert share_link == page.url
    watcher = await new_page()
    await watcher.goto(share_link)

    await expect(page.locator("#status")).to_have_attribute("data-status", "completed")
    await expect(page.locator("#status")).to_have_text("Done")

    # the canvas changed with the preview frames while the task ran; speed and ETA were shown
    assert await canvas_samples(page) >= 3
    assert int(await page.locator("#preview").get_attribute("data-frames")) >= 3
    stats = await page.evaluate("() => window.__samplingStats")
    assert any(re.fullmatch(r"[\d.]+ (it/s|s/it)", speed) for speed, _ in stats), stats[:5]
    assert any(eta.startswith("~") or eta == "now" for _, eta in stats), stats[:5]
    await expect(page.locator("#stat-step")).to_have_text("20/20")
    await expect(page.locator("#progress")).to_have_attribute("aria-valuenow", "100")
    await expect(page.get_by_role("button", name="Cancel")).to_be_disabled()
    assert await timeline_titles(page) == LIFECYCLE

    # the gallery: the image, its seed, a working download link
    figures = page.locator("#gallery figure")
    await expect(figures).to_have_count(1)
    image = figures.first.locator("img")
    await expect(image).to_have_js_property("naturalWidth", 256)
    await expect(figures.first).to_contain_text("Seed 1234")
    download = figures.first.get_by_role("link", name="Download image 1 of 1")
    assert (await download.get_attribute("download")).endswith("0.png")
    response = await page.request.get(await download.get_attribute("href"))
    assert response.status == 200
    assert response.headers["content-type"] == "image/png"
    assert (await response.body()).startswith(b"\x89PNG")

    # the second browser followed the same task to the same end
    await expect(watcher.locator("#status")).to_have_attribute("data-status", "completed")
    await expect(watcher.locator("#gallery figure img")).to_have_js_property("naturalWidth", 256)
    assert await timeline_titles(watcher) == LIFECYCLE
    await expect(watcher.locator("#task-prompt")).to_have_text("a red fox in fresh snow, golden hour")


async def test_a_latent_size_preview_is_drawn_smoothly_at_the_images_size(server: ServerProcess, page: Page) -> None:
    await page.goto(server.base_url + "/")
    await fill_form(page, "a lighthouse on a cliff at dusk", size="256x256", steps=12)
    # 256 px: the latent2rgb previews are 32x32, a latent cell is 8 canvas pixels a side
    await watch_preview_paints(page.locator("#preview"), "#status[data-status=running]", 8)
    await page.get_by_role("button", name="Generate").click()
    await expect(page.locator("#status")).to_have_attribute("data-status", "completed")
    assert_drawn_smoothly(await preview_paints(page), (256, 256))


async def test_queue_position_then_cancel_from_the_page(server: ServerProcess, page: Page) -> None:
    blocker = await create_task(server.base_url, width=512, height=512, num_inference_steps=100)
    await page.goto(server.base_url + "/")
    await fill_form(page, "a task to cancel", size="512x512", steps=100)
    await page.get_by_role("button", name="Generate").click()

    # behind the blocker: queued, with its position
    await expect(page.locator("#status")).to_have_attribute("data-status", "queued")
    await expect(page.locator("#status")).to_have_text(re.compile(r"^Queued · #\d+$"))
    await expect(page.locator("#stat-queue")).to_have_text(re.compile(r"^\d+ of \d+$"))
    await cancel_task(server.base_url, blocker["id"])

    # running: previews arrive; then the user cancels
    await expect(page.locator("#status")).to_have_attribute("data-status", "running")
    await expect(page.locator("#preview")).to_have_attribute("data-frames", re.compile(r"^([2-9]|\d\d+)$"))
    await page.get_by_role("button", name="Cancel").click()

    await expect(page.locator("#status")).to_have_attribute("data-status", "cancelled")
    await expect(page.locator("#status")).to_have_text("Cancelled")
    titles = await timeline_titles(page)
    assert titles[-1] == "Cancelled" and "Done" not in titles
    await expect(page.locator("#timeline .tl-item").last).to_contain_text("cancelled by request")
    await expect(page.locator("#gallery figure")).to_have_count(0)
    await expect(page.get_by_role("button", name="Cancel")).to_be_disabled()
    task_id = page.url.split("/t/")[1].split("?")[0]
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        assert (await http.get(f"/v1/tasks/{task_id}")).json()["status"] == "cancelled"


async def test_share_link_after_completion_replays_the_task(server: ServerProcess, new_page) -> None:
    page = await new_page()
    await page.goto(server.base_url + "/")
    await fill_form(page, "replay me, please", size="256x256", steps=8, seed=42)
    await page.get_by_role("button", name="Generate").click()
    await expect(page.locator("#status")).to_have_attribute("data-status", "completed")
    share_link = await page.locator("#share-link").input_value()
    titles = await timeline_titles(page)
    assert titles == LIFECYCLE

    # another browser, later: the whole story again, from the stored events
    later = await new_page()
    await later.goto(share_link)
    await expect(later.locator("#status")).to_have_attribute("data-status", "completed")
    assert await timeline_titles(later) == titles
    await expect(later.locator("#task-prompt")).to_have_text("replay me, please")
    await expect(later.locator("#stat-step")).to_have_text("8/8")
    await expect(later.locator("#gallery figure")).to_have_count(1)
    await expect(later.locator("#gallery figure img")).to_have_js_property("naturalWidth", 256)
    await expect(later.locator("#gallery figure")).to_contain_text("Seed 42")
    await expect(later.locator("#preview")).not_to_have_attribute("data-frames", "0")
    # the form holds the task's settings, ready to run it again
    await expect(later.get_by_label("Prompt", exact=True)).to_have_value("replay me, please")
    await expect(later.get_by_label("Width")).to_have_value("256")
    await expect(later.get_by_label("Seed", exact=True)).to_have_value("42")


async def test_server_validation_errors_are_shown_next_to_the_field(server: ServerProcess, page: Page, page_errors) -> None:
    page_errors.allow(r"status of 422")  # Chromium logs the refused request itself
    await page.goto(server.base_url + "/")
    await page.get_by_label("Prompt", exact=True).fill("   ")
    await page.get_by_role("button", name="Generate").click()
    await expect(page.locator("#form-error")).to_have_text("Please fix the highlighted fields.")
    await expect(page.get_by_label("Prompt", exact=True)).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#prompt-error")).to_contain_text("blank")
    await expect(page).to_have_url(server.base_url + "/")


async def test_a_link_to_an_unknown_task_says_so(server: ServerProcess, page: Page, page_errors) -> None:
    page_errors.allow(r"status of 404")
    await page.goto(server.base_url + "/t/0123456789abcdef?token=nope")
    await expect(page.locator("#placeholder")).to_have_text("This task does not exist on this server.")
    await expect(page.locator("#status")).to_have_text("Unavailable")
    await expect(page.get_by_role("button", name="Cancel")).to_be_disabled()
