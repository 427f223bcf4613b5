"""The embeddable view: the `<latentcast-preview>` web component (static/embed.js) and `/embed/{id}`."""

from __future__ import annotations

import httpx
from playwright.async_api import Page, expect

from tests.pages.helpers import (
    assert_drawn_smoothly,
    cancel_task,
    create_task,
    partner_site,
    preview_paints,
    watch_preview_paints,
)
from tests.support import ServerProcess, free_port

# Computed styles on both sides of the component's shadow boundary.
STYLES = """
element => {
  const shadow = element.shadowRoot;
  const style = (node, property) => getComputedStyle(node).getPropertyValue(property);
  return {
    pageBarHeight: style(document.querySelector(".bar"), "height"),
    innerBarHeight: style(shadow.querySelector(".bar"), "height"),
    pageCanvasBorder: style(document.querySelector("#sparkline"), "border-top-width"),
    innerCanvasBorder: style(shadow.querySelector("canvas"), "border-top-width"),
    pageStatusBackground: style(document.querySelector(".status"), "background-color"),
    innerStatusBackground: style(shadow.querySelector(".status"), "background-color"),
    innerFont: style(shadow.querySelector(".status"), "font-family"),
  };
}
"""


async def test_the_example_page_embeds_a_task_that_reaches_done(server: ServerProcess, page: Page) -> None:
    task = await create_task(server.base_url, prompt="spring banner", width=384, height=256, num_inference_steps=12)
    await page.goto(f"{server.base_url}/examples/embed.html?task={task['id']}&token={task['token']}")

    # the web component: its DOM events drive the page's own status, bar and activity log
    await expect(page.locator("#component-status")).to_have_attribute("data-state", "done")
    await expect(page.locator("#activity")).to_contain_text("progress: step 12/12")
    await expect(page.locator("#activity")).to_contain_text("status: completed")
    await expect(page.locator("#activity")).to_contain_text("done: 1 image(s)")
    component = page.locator("#component")
    assert await component.evaluate("element => element.status") == "completed"
    outputs = await component.evaluate("element => element.outputs")
    assert outputs[0]["url"] == f"{server.base_url}/v1/files/{task['id']}/0.png?token={task['token']}"
    await expect(component).to_have_attribute("data-status", "completed")
    # the finished image, inside the shadow root, at the task's aspect ratio
    image = component.locator("img")
    await expect(image).to_be_visible()
    await expect(image).to_have_js_property("naturalWidth", 384)
    box = await component.bounding_box()
    assert box is not None and abs(box["width"] / box["height"] - 384 / 256) < 0.02

    # styles stay on their side of the shadow boundary, both ways
    styles = await component.evaluate(STYLES)
    assert styles["pageBarHeight"] == "4px" and styles["innerBarHeight"] == "5px"
    assert styles["pageCanvasBorder"] == "1px" and styles["innerCanvasBorder"] == "0px"
    assert styles["pageStatusBackground"] != styles["innerStatusBackground"]
    assert "Georgia" not in styles["innerFont"]

    # the iframe shows the same task and reports to the page with postMessage
    await expect(page.locator("#iframe-status")).to_have_attribute("data-state", "done")
    framed = page.frame_locator("#frame").locator("latentcast-preview")
    await expect(framed).to_have_attribute("data-status", "completed")
    await expect(framed.locator("img")).to_have_js_property("naturalWidth", 384)


async def test_the_component_draws_a_latent_size_preview_smoothly_at_the_images_size(
    server: ServerProcess, page: Page
) -> None:
    blocker = await create_task(server.base_url, width=512, height=512, num_inference_steps=100)
    task = await create_task(server.base_url, width=256, height=128, num_inference_steps=12)
    await page.goto(f"{server.base_url}/embed/{task['id']}?token={task['token']}")
    component = page.locator("latentcast-preview")
    await expect(component).to_have_attribute("data-status", "queued")  # behind the blocker: nothing painted yet
    # 256x128 px: the latent2rgb previews are 32x16, a latent cell is 8 canvas pixels a side
    await watch_preview_paints(component.locator("canvas"), "latentcast-preview[data-status=running]", 8)
    await cancel_task(server.base_url, blocker["id"])
    await expect(component).to_have_attribute("data-status", "completed")
    assert_drawn_smoothly(await preview_paints(page), (256, 128))


async def test_the_component_works_on_a_third_party_origin(start_server, page: Page) -> None:
    html = """<!doctype html>
<html><head>
<script type="module" src="{server}/static/embed.js"></script>
<script type="module">
  window.seen = [];
  for (const element of document.querySelectorAll("latentcast-preview"))
    for (const type of ["progress", "status", "done", "error"])
      element.addEventListener(type, (event) => window.seen.push({{ id: element.id, type, detail: event.detail }}));
</script>
</head><body>
<div style="width: 320px; height: 200px"><latentcast-preview id="fixed" task="{ident}" token="{token}"></latentcast-preview></div>
<div style="width: 300px"><latentcast-preview id="auto" task="{ident}" token="{token}"></latentcast-preview></div>
<div style="width: 200px"><latentcast-preview id="wrong" task="{ident}" token="not-its-token"></latentcast-preview></div>
</body></html>"""

    # a server trusts other sites' pages only when told to (docs/security.md)
    site_port = free_port()
    server = start_server("--preview-min-interval", "0", "--cors-origin", f"http://127.0.0.1:{site_port}")
    task = await create_task(server.base_url, width=384, height=256, num_inference_steps=12)
    with partner_site(html.format(server=server.base_url, ident=task["id"], token=task["token"]), port=site_port) as origin:
        await page.goto(f"{origin}/status")
        await check_third_party_embeds(page, server, task)


async def check_third_party_embeds(page: Page, server: ServerProcess, task: dict) -> None:
    ident = task["id"]
    await page.wait_for_function("() => window.seen.filter(e => e.type === 'done').length === 2")
    await page.wait_for_function("() => window.seen.some(e => e.id === 'wrong' && e.type === 'error')")
    seen = await page.evaluate("() => window.seen")

    # no `server` attribute: the component talks to the server embed.js came from
    for element_id in ("fixed", "auto"):
        mine = [e for e in seen if e["id"] == element_id]
        steps = [e["detail"]["step"] for e in mine if e["type"] == "progress" and e["detail"]["status"] == "running"]
        assert steps and steps[-1] == 12 and steps == sorted(steps)
        statuses = [e["detail"]["status"] for e in mine if e["type"] == "status"]
        assert statuses[-1] == "completed" and "running" in statuses
        done = next(e for e in mine if e["type"] == "done")["detail"]
        assert done["id"] == ident and done["seed"] == task["seed"]
        assert done["outputs"][0]["url"].startswith(f"{server.base_url}/v1/files/{ident}/")
    error = next(e for e in seen if e["id"] == "wrong" and e["type"] == "error")["detail"]
    assert error["code"] == "forbidden"
    await expect(page.locator("#wrong")).to_have_attribute("data-status", "failed")
    await expect(page.locator("#wrong").get_by_role("status")).to_have_text("Wrong token for this task")

    # it fills a container with a height, and keeps the task's aspect ratio in one without
    fixed = await page.locator("#fixed").bounding_box()
    auto = await page.locator("#auto").bounding_box()
    assert fixed is not None and (fixed["width"], fixed["height"]) == (320, 200)
    assert auto is not None and auto["width"] == 300 and abs(auto["height"] - 200) < 1
    await expect(page.locator("#auto img")).to_have_js_property("naturalWidth", 384)


async def test_embed_pages_may_be_framed_and_the_others_may_not(server: ServerProcess) -> None:
    """By this server's pages only, unless --cors-origin names other sites (tests/security)."""
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        embed = await http.get("/embed/0123456789abcdef?token=x")
        page = await http.get("/")
        script = await http.get("/static/embed.js")
    assert embed.status_code == 200 and "frame-ancestors 'self'" in embed.headers["content-security-policy"]
    assert "x-frame-options" not in embed.headers
    assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "SAMEORIGIN"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert script.headers["access-control-allow-origin"] == "*"
    assert script.headers["content-type"].startswith("text/javascript")
