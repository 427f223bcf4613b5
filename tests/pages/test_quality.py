"""Every page on a phone and on a wide screen: fits the width, labelled, no console errors.

The screenshots taken here are the ones in docs/screenshots/ (run with UPDATE_SCREENSHOTS=1 to
refresh them; otherwise they go to the test's tmp dir).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.pages.helpers import PHONE, WIDE, ConsoleWatch, cancel_task, create_task, fill_form, screenshot
from tests.support import ServerProcess

# Every page on one screen, with real tasks of up to 100 steps at 512 px: several minutes on a
# loaded machine. The limit guards against a hang; each wait inside has its own safety net.
pytestmark = pytest.mark.timeout(900)

# Accessibility basics, inside the embeds' shadow roots too: every control and landmark widget has
# a name, every image an alt, the document a language and a title.
A11Y = """
() => {
  const problems = [];
  const describe = (el) => el.outerHTML.slice(0, 90);
  const named = (el) => {
    const root = el.getRootNode();
    const labelledBy = el.getAttribute("aria-labelledby");
    return Boolean(
      (el.getAttribute("aria-label") || "").trim() ||
      (labelledBy && root.getElementById?.(labelledBy)?.textContent.trim()) ||
      (el.labels && [...el.labels].some((label) => label.textContent.trim())) ||
      (el.getAttribute("title") || "").trim()
    );
  };
  const roots = [document, ...[...document.querySelectorAll("latentcast-preview")].map((e) => e.shadowRoot)];
  for (const root of roots) {
    for (const el of root.querySelectorAll("input, select, textarea")) if (!named(el)) problems.push(`unlabelled ${describe(el)}`);
    const content = (el) => el.textContent.trim() || [...el.querySelectorAll("img[alt], svg[aria-label]")].some((i) => (i.alt ?? i.getAttribute("aria-label")).trim());
    for (const el of root.querySelectorAll("button, a[href]")) if (!named(el) && !content(el)) problems.push(`nameless ${describe(el)}`);
    for (const el of root.querySelectorAll("img")) if (!el.hasAttribute("alt")) problems.push(`no alt: ${describe(el)}`);
    for (const el of root.querySelectorAll("[role=progressbar], canvas, iframe, [role=img]")) if (!named(el)) problems.push(`nameless ${describe(el)}`);
  }
  if (!document.documentElement.lang) problems.push("no lang");
  if (!document.title) problems.push("no title");
  return problems;
}
"""

OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


async def check(page: Page, page_errors: ConsoleWatch) -> None:
    assert await page.evaluate(OVERFLOW) <= 0, "the page is wider than the screen"
    assert await page.evaluate(A11Y) == []
    assert page_errors.unexpected() == []


@pytest.mark.parametrize("screen", ["phone", "wide"])
async def test_every_page_fits_the_screen_is_labelled_and_logs_no_errors(
    server: ServerProcess, new_page, page_errors: ConsoleWatch, screen: str, tmp_path: Path
) -> None:
    viewport = PHONE if screen == "phone" else WIDE
    base = server.base_url

    # the live page: a task from the form, mid-run and done
    live = await new_page(viewport)
    await live.goto(base + "/")
    await expect(live.locator("#model option")).to_have_count(2)  # the models list loaded
    await check(live, page_errors)
    await screenshot(live, f"live-idle-{screen}", tmp_path, docs=False)
    await fill_form(live, "A lighthouse on a cliff at dusk, volumetric light, 35mm photo", size="512x512", steps=20)
    await live.get_by_role("button", name="Generate").click()
    await expect(live.locator("#preview")).to_have_attribute("data-frames", re.compile(r"^([5-9]|\d\d+)$"))
    await check(live, page_errors)
    # the wide live page's docs screenshots are tests/pages/test_drawing.py's, on the model that draws
    await screenshot(live, f"live-running-{screen}", tmp_path, full_page=screen == "wide", docs=screen == "phone")
    await expect(live.locator("#status")).to_have_attribute("data-status", "completed")
    await expect(live.locator("#gallery figure img")).to_have_js_property("naturalWidth", 512)
    await check(live, page_errors)
    task_id = live.url.split("/t/")[1].split("?")[0]
    token = live.url.split("token=")[1]
    entry = live.locator(f'#history .history-item[data-id="{task_id}"]')
    await expect(entry).to_have_attribute("data-status", "completed")  # the history has the task too
    await screenshot(live, f"live-done-{screen}", tmp_path, docs=False)
    await entry.get_by_role("button", name="Delete", exact=True).click()  # its question and answers fit too
    await expect(entry.get_by_role("button", name="Keep")).to_be_focused()
    await check(live, page_errors)
    await entry.get_by_role("button", name="Keep").click()

    # the dashboard, busy: one task running, one waiting
    dashboard = await new_page(viewport)
    await dashboard.goto(base + "/dashboard")
    await expect(dashboard.locator("#connection")).to_have_attribute("data-state", "open")
    # the longest task the server takes, so that it is still running when its card has painted 4
    # frames however slowly a busy machine paints them (it is cancelled once they are on screen)
    running = await create_task(base, prompt="Spring collection hero banner, pastel flowers", width=512, height=512, num_inference_steps=100)
    waiting = await create_task(base, prompt="Studio portrait of a corgi wearing sunglasses", num_inference_steps=8)
    card = dashboard.locator(f'.run-card[data-id="{running["id"]}"]')
    await expect(card.locator("canvas")).to_have_attribute("data-frames", re.compile(r"^([4-9]|\d\d+)$"))
    await expect(dashboard.locator(f'.queue-row[data-id="{waiting["id"]}"]')).to_be_visible()
    await check(dashboard, page_errors)
    await screenshot(dashboard, f"dashboard-{screen}", tmp_path, full_page=screen == "wide")
    await cancel_task(base, running["id"])
    await expect(dashboard.locator(f'.recent-card[data-id="{waiting["id"]}"]')).to_have_attribute(
        "data-status", "completed"
    )
    await check(dashboard, page_errors)

    # the iframe view and the example third-party page, on the finished task
    embed = await new_page({"width": 640, "height": 640} if screen == "wide" else {"width": 320, "height": 320})
    await embed.goto(f"{base}/embed/{task_id}?token={token}")
    await expect(embed.locator("latentcast-preview")).to_have_attribute("data-status", "completed")
    await expect(embed.locator("latentcast-preview img")).to_be_visible()
    await check(embed, page_errors)
    await screenshot(embed, f"embed-{screen}", tmp_path, full_page=False, docs=False)

    example = await new_page(viewport)
    await example.goto(f"{base}/examples/embed.html?task={task_id}&token={token}")
    await expect(example.locator("#component-status")).to_have_attribute("data-state", "done")
    await expect(example.locator("#iframe-status")).to_have_attribute("data-state", "done")
    await check(example, page_errors)
    await screenshot(example, f"example-{screen}", tmp_path, full_page=screen == "phone", docs=screen == "wide")

    reference = await new_page(viewport)
    await reference.goto(base + "/docs")
    await expect(reference.locator("#schema-TaskParams")).to_be_visible()  # rendered from /openapi.json
    await check(reference, page_errors)
