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
from playwright.async_api import ConsoleMessage, Page

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


# Samples a canvas on every animation frame (a 16x16 thumbnail of it, as a string) while `active()`
# holds, so a test can tell whether the picture changed while the task ran. Runs in the page;
# read the result with `canvas_samples`.
SAMPLER = """
([selector, activeSelector]) => {
  const canvas = document.querySelector(selector);
  const probe = document.createElement("canvas");
  probe.width = probe.height = 16;
  const context = probe.getContext("2d", { willReadFrequently: true });
  const samples = (window.__samples = new Set());
  window.__samplingStats = [];
  const tick = () => {
    if (document.querySelector(activeSelector)) {
      context.clearRect(0, 0, 16, 16);
      context.drawImage(canvas, 0, 0, 16, 16);
      samples.add(Array.from(context.getImageData(0, 0, 16, 16).data).join(","));
      const speed = document.querySelector("#stat-speed"), eta = document.querySelector("#stat-eta");
      if (speed && eta) window.__samplingStats.push([speed.textContent, eta.textContent]);
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}
"""


async def start_canvas_sampler(page: Page, canvas: str, active: str) -> None:
    await page.evaluate(SAMPLER, [canvas, active])


async def canvas_samples(page: Page) -> int:
    """How many different pictures the sampled canvas showed."""
    return await page.evaluate("() => window.__samples.size")


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
