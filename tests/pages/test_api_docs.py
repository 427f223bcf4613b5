"""`/docs`, the API reference rendered from `/openapi.json`, and `/v1/tasks/{id}/events` read by a
browser's own EventSource, both in Chromium."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.async_api import Page, expect

from latentcast.server.protocol.events import EventType
from tests.pages.helpers import create_task, screenshot
from tests.support import ServerProcess, collect


async def test_the_api_reference_lists_every_endpoint_with_its_models(
    server: ServerProcess, page: Page, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        document = (await http.get("/openapi.json")).json()
    operations = sum(len(methods) for methods in document["paths"].values())

    await page.goto(server.base_url + "/docs")
    await expect(page.locator("article.operation")).to_have_count(operations)
    contents = page.get_by_role("navigation", name="Endpoints")
    await expect(contents.get_by_role("link", name="POST /v1/images/generations")).to_be_visible()
    await expect(contents.get_by_role("link", name="GET /v1/tasks/{task_id}/events")).to_be_visible()

    create = page.locator("#op-tasks_create_task")
    await expect(create.locator(".op-title")).to_contain_text("/v1/tasks")
    await expect(create).to_contain_text("Create a task")
    await expect(create).to_contain_text("Authorization: Bearer")
    await expect(create.locator(".response")).to_contain_text(["201", "400", "401", "422", "429"])
    examples = create.locator("figure.example")
    await expect(examples.locator("figcaption")).to_have_text([
        "A prompt, with every other field the server's default (1024x1024, 28 steps, PNG)",
        "Small and quick, with a fixed seed and fewer previews",
        "Told by a webhook when it ends",
    ])
    await expect(examples.first.locator("pre")).to_have_text('{\n  "prompt": "a lighthouse at dusk"\n}')
    # the socket and the pages are told in the introduction, not listed as endpoints
    await expect(page.locator("#intro")).to_contain_text("ws://HOST/v1/ws")
    await expect(contents.get_by_role("link", name="GET /v1/ws")).to_have_count(0)
    await screenshot(page, "api-docs", tmp_path, full_page=False)

    # from the request body to its model, whose limits are the server's own
    await create.get_by_role("link", name="TaskRequest").click()
    params = page.locator("#schema-TaskRequest")
    await expect(params).to_be_in_viewport()
    await expect(params.locator("tr", has=page.locator("code", has_text="webhook_events"))).to_contain_text(
        "which events the webhook gets"
    )
    width = params.locator("tr", has=page.locator("code", has_text="width"))
    await expect(width).to_contain_text("≥ 64")
    await expect(width).to_contain_text("multiple of 8")
    await expect(params.locator("tr", has=page.locator("code", has_text="prompt")).first).to_contain_text("required")

    events = page.locator("#op-sse_task_events")
    await expect(events).to_contain_text("addEventListener")
    stream = events.locator(".content li", has_text="text/event-stream")
    await expect(stream).to_contain_text("each event's data: Event")


# Follows one task with EventSource the way browser code does: a listener per event type. Resolves
# with what the listeners got, and how many events `onmessage` saw.
FOLLOW = """
([url, types, count]) => new Promise((resolve, reject) => {
  const source = new EventSource(url);
  const received = [];
  let unnamed = 0;
  source.onmessage = () => { unnamed += 1; };
  source.onerror = () => { source.close(); reject(new Error(`the stream failed after ${received.length} events`)); };
  for (const type of types) {
    source.addEventListener(type, (event) => {
      received.push({ name: event.type, id: event.lastEventId, envelope: JSON.parse(event.data) });
      if (received.length === count) {
        source.close();
        resolve({ received, unnamed });
      }
    });
  }
})
"""


async def test_a_browsers_event_source_gets_each_named_event_through_add_event_listener(
    server: ServerProcess, page: Page
) -> None:
    task = await create_task(server.base_url, width=64, height=64, num_inference_steps=4, preview_method="none")
    expected = await collect(server.ws_url, task["id"], task["token"], previews="none")

    await page.goto(server.base_url + "/docs")  # a page of the server's, under its Content-Security-Policy
    url = f"/v1/tasks/{task['id']}/events?previews=none&token={task['token']}"
    result = await page.evaluate(FOLLOW, [url, [t.value for t in EventType], len(expected)])

    assert [r["envelope"] for r in result["received"]] == expected
    assert [(r["name"], r["id"]) for r in result["received"]] == [(e["type"], str(e["seq"])) for e in expected]
    assert result["unnamed"] == 0  # every event is named: `onmessage` alone hears nothing
