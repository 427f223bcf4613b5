"""What the browser tests share: screens, console watching, tasks over HTTP, the page's canvas and form."""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import ConsoleMessage, Locator, Page

from tests.support import ROOT

SCREENSHOTS = ROOT / "docs" / "screenshots"
# How long any wait in a page test may take at most. Only a safety net: every wait returns as soon as
# its condition holds, so a busy machine makes the tests slower instead of failing them.
SAFETY_NET_SECONDS = 180
WIDE = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}

LIFECYCLE = [
    "Queued",
    "Accepted",
    "Encoding prompt",
    "Prompt encoded",
    "Assigned",
    "Denoising",
    "Denoised",
    "Saving images",
    "Done",
]


class ConsoleWatch:
    """Console errors and page errors of one test's pages."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def watch(self, page: Page) -> Page:
        def on_console(message: ConsoleMessage) -> None:
            if message.type in ("error", "assert"):
                self.errors.append(f"console.{message.type} on {page.url}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught on {page.url}: {error}"))
        return page

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


async def set_range(page: Page, selector: str, value: str) -> None:
    """Move a slider the way a user's drag ends: value set, `input` fired."""
    await page.locator(selector).evaluate(
        "(input, value) => { input.value = value; input.dispatchEvent(new Event('input', { bubbles: true })); }", value
    )


async def fill_form(page: Page, prompt: str, *, size: str, steps: int, seed: int | None = None) -> None:
    await page.get_by_label("Prompt", exact=True).fill(prompt)
    await page.get_by_label("Size preset").select_option(size)
    await set_range(page, "#num_inference_steps", str(steps))
    if seed is not None:
        await page.get_by_label("Seed", exact=True).fill(str(seed))


async def timeline_titles(page: Page) -> list[str]:
    return await page.locator("#timeline .tl-title").all_text_contents()


async def create_task(base_url: str, **params: Any) -> dict[str, Any]:
    body = {"prompt": "a lighthouse on a cliff at dusk", "width": 256, "height": 256, "num_inference_steps": 8, **params}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        response = await http.post("/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def cancel_task(base_url: str, task_id: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        response = await http.post(f"/v1/tasks/{task_id}/cancel")
    assert response.status_code in (202, 409), response.text


# Samples a canvas at every paint of it (a 16x16 thumbnail, as a string) while `active` holds, so a
# test can tell whether the picture changed while the task ran. At every paint, not every animation
# frame: a task whose steps come faster than the screen refreshes paints several previews between
# two frames, and sampling per frame then saw one picture where the page had shown several. The
# page's preview surface counts its paints in the canvas's `data-frames`, which marks each one.
# Runs in the page; read the result with `canvas_samples`.
SAMPLER = """
([selector, activeSelector]) => {
  const canvas = document.querySelector(selector);
  const probe = document.createElement("canvas");
  probe.width = probe.height = 16;
  const context = probe.getContext("2d", { willReadFrequently: true });
  const samples = (window.__samples = new Set());
  window.__samplingStats = [];
  new MutationObserver(() => {
    if (canvas.dataset.frames === "0" || !document.querySelector(activeSelector)) return;
    context.clearRect(0, 0, 16, 16);
    context.drawImage(canvas, 0, 0, 16, 16);
    samples.add(Array.from(context.getImageData(0, 0, 16, 16).data).join(","));
    const speed = document.querySelector("#stat-speed"), eta = document.querySelector("#stat-eta");
    if (speed && eta) window.__samplingStats.push([speed.textContent, eta.textContent]);
  }).observe(canvas, { attributes: true, attributeFilter: ["data-frames"] });
}
"""


async def start_canvas_sampler(page: Page, canvas: str, active: str) -> None:
    await page.evaluate(SAMPLER, [canvas, active])


async def canvas_samples(page: Page) -> int:
    """How many different pictures the sampled canvas showed."""
    return await page.evaluate("() => window.__samples.size")


# Watches a preview canvas: at every paint while `active` matches (the task runs, so what is painted
# is a preview, not the final image), measures how horizontally neighbouring pixels differ inside the
# cells of the latent grid (`cell` canvas pixels a side) and across the cells' borders. A preview
# enlarged by nearest neighbour is flat inside every cell and jumps at its borders (a mosaic); one
# scaled smoothly changes about as much inside a cell as across. Read them with `preview_paints`.
PAINT_WATCHER = """
(canvas, [active, cell]) => {
  const context = canvas.getContext("2d");
  const paints = (window.__paints = []);
  const measure = () => {
    const { width, height } = canvas;
    const pixels = context.getImageData(0, 0, width, height).data;
    let inside = 0, insidePairs = 0, differing = 0, border = 0, borderPairs = 0;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x + 1 < width; x++) {
        const i = 4 * (y * width + x);
        const step = Math.abs(pixels[i] - pixels[i + 4]) + Math.abs(pixels[i + 1] - pixels[i + 5]) + Math.abs(pixels[i + 2] - pixels[i + 6]);
        if (Math.floor(x / cell) === Math.floor((x + 1) / cell)) {
          inside += step;
          insidePairs += 1;
          differing += step > 0;
        } else {
          border += step;
          borderPairs += 1;
        }
      }
    }
    return { width, height, inside: inside / insidePairs, border: border / borderPairs, differing: differing / insidePairs };
  };
  new MutationObserver(() => {
    if (canvas.dataset.frames !== "0" && document.querySelector(active)) paints.push(measure());
  }).observe(canvas, { attributes: true, attributeFilter: ["data-frames"] });
}
"""


async def watch_preview_paints(canvas: Locator, active: str, cell: int) -> None:
    await canvas.evaluate(PAINT_WATCHER, [active, cell])


async def preview_paints(page: Page) -> list[dict[str, float]]:
    """What `watch_preview_paints` measured, one entry per preview painted."""
    return await page.evaluate("() => window.__paints")


def assert_drawn_smoothly(paints: list[dict[str, float]], size: tuple[int, int]) -> None:
    """Every preview painted filled a canvas of the image's `size` with no mosaic: neighbouring
    pixels inside one latent cell differ, and change there about as much as across the cells' borders."""
    assert paints, "no preview was painted while the task ran"
    for paint in paints:
        assert (paint["width"], paint["height"]) == size, paint
        assert paint["differing"] > 0.9 and paint["inside"] > 0.5 * paint["border"], paint


async def screenshot(page: Page, name: str, tmp_path: Path, *, full_page: bool = True, docs: bool = True) -> Path:
    """A PNG in the test's tmp dir, or (`docs`) in docs/screenshots with UPDATE_SCREENSHOTS=1."""
    folder = SCREENSHOTS if docs and os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    if full_page:  # from the top, or sticky headers land mid-picture
        await page.evaluate("() => window.scrollTo({ top: 0, behavior: 'instant' })")
    await page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    assert path.stat().st_size > 5_000
    return path


@contextlib.contextmanager
def partner_site(html: str, port: int = 0) -> Iterator[str]:
    """Another origin serving one HTML page (a third party's site), for cross-origin embedding.

    A real loopback server, not a routed fake: Chromium only lets pages whose address it knows is
    loopback load resources from loopback (Local Network Access).
    """
    body = html.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            if self.path.startswith("/favicon"):
                self.send_response(204)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}"
    finally:
        site.shutdown()
        site.server_close()
