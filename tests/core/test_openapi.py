"""`/openapi.json`: a valid OpenAPI 3.1 document that describes every route the app serves, and
the server's real answers, native and each provider's, in the shapes it states."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import aconnect_sse
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.routing import Mount, Route, WebSocketRoute

from latentcast.server.api import pages
from latentcast.server.app import create_app
from latentcast.server.config import Settings
from tests.support import SMALL, collect

PROMPT = "a lighthouse at dusk"


class Described:
    """The document, to check an answer against what it says of that path, method and status."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry = Registry().with_resource("urn:openapi", resource)

    def conforms(self, instance: Any, *pointer: str) -> None:
        """`instance` is valid against the schema at `pointer` (its parts, unescaped) in the document."""
        escaped = "/".join(part.replace("~", "~0").replace("/", "~1") for part in pointer)
        validator = Draft202012Validator({"$ref": f"urn:openapi#/{escaped}"}, registry=self.registry)
        problems = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]
        assert not problems, f"{'/'.join(pointer)}:\n" + "\n".join(problems)

    def check(self, answer: httpx.Response, path: str) -> None:
        """`answer` has a status, media type and body the document gives for `path` (a template)."""
        method = answer.request.method.lower()
        replies = self.document["paths"][path][method]["responses"]
        status = str(answer.status_code)
        assert status in replies, f"{method} {path} answered {status}, not described: {answer.text[:300]}"
        content = replies[status].get("content", {})
        media = answer.headers.get("content-type", "").split(";")[0]
        assert media in content, f"{method} {path} {status} answered {media}; described: {list(content)}"
        if media == "application/json":
            self.conforms(answer.json(), "paths", path, method, "responses", status, "content", media, "schema")

    def check_event(self, event: dict[str, Any]) -> None:
        stream = "paths", "/v1/tasks/{task_id}/events", "get", "responses", "200", "content", "text/event-stream"
        self.conforms(event, *stream, "x-event-data")


async def described(client: httpx.AsyncClient) -> Described:
    answer = await client.get("/openapi.json")
    assert answer.status_code == 200
    return Described(answer.json())


def served_operations(data_dir: Path) -> tuple[set[tuple[str, str]], set[str]]:
    """Every (path, method) of the API the app built by `create_app` serves (HEAD goes without saying
    beside GET), and the paths of its pages and sockets, which are not operations."""
    app = create_app(Settings(data_dir=data_dir))
    served, not_operations = set(), set()
    for route in app.routes:
        if isinstance(route, Mount):
            assert route.path == "/static", f"a mount other than the static files: {route.path}"
        elif isinstance(route, WebSocketRoute) or route.endpoint.__module__ == pages.__name__:
            not_operations.add(route.path)
        elif isinstance(route, Route) and route.methods is None:
            served.add((route.path, "get"))
        else:
            assert isinstance(route, Route), f"a route of an unknown kind: {route!r}"
            served.update((route.path, method.lower()) for method in route.methods or () if method != "HEAD")
    return served, not_operations


async def test_the_document_is_valid_openapi_3_1_and_describes_every_route(server, client, tmp_path):
    doc = await described(client)
    document = doc.document
    validate(document)  # openapi-spec-validator, against the OpenAPI 3.1 schema
    assert document["openapi"] == "3.1.0"

    listed = {(path, method) for path, operations in document["paths"].items() for method in operations}
    served, not_operations = served_operations(tmp_path)
    missing = served - listed
    assert not missing, (
        "routes without a description (add an Operation for the handler in server/api/operations.py "
        f"or server/compat/operations.py): {sorted(missing)}"
    )
    for must in ["/v1/tasks", "/v1/images/generations", "/v1/Run/{owner}/{project}", "/openapi.json"]:
        assert must in document["paths"]
    # the socket and the pages are described in prose, not as operations a generator would call
    assert not_operations == {"/v1/ws", "/v1", "/", "/t/{task_id}", "/dashboard", "/embed/{task_id}",
                              "/examples/embed.html", "/docs"}
    assert not_operations.isdisjoint(document["paths"])
    intro = document["info"]["description"]
    assert "`ws://HOST/v1/ws`, also at `/v1`" in intro and '`{"type": "subscribe_all"}`' in intro
    assert "`/dashboard`" in intro

    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    headers = {scheme["name"] for scheme in schemes.values() if scheme.get("in") == "header"}
    assert headers == {"x-api-key", "x-nonce", "x-signature", "x-task-token"}
    assert {"in": "query", "name": "token"}.items() <= schemes["taskToken"].items()
    create = document["paths"]["/v1/tasks"]["post"]
    assert {"bearer": []} in create["security"] and {"taskToken": []} not in create["security"]
    assert {"taskToken": []} in document["paths"]["/v1/tasks/{task_id}"]["get"]["security"]
    # the request models are the ones the server validates with: a limit shown is a limit kept
    params = document["components"]["schemas"]["TaskParams"]
    assert params["required"] == ["prompt"] and params["additionalProperties"] is False
    width = params["properties"]["width"]
    assert width == {**width, "minimum": 64, "maximum": 2048, "multipleOf": 8}
    assert "docs/protocol.md" in intro

    # every operation that takes a body shows example requests, each one its schema accepts
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            examples = [(media, body["examples"]) for media, body in content.items() if "examples" in body]
            assert bool(examples) == bool(content), f"{method} {path}: no example request"
            for media, named in examples:
                for name, example in named.items():
                    pointer = ("paths", path, method, "requestBody", "content", media, "schema")
                    doc.conforms(example["value"], *pointer)
                    assert example["summary"] == name


async def test_native_answers_are_the_ones_described(server, client):
    doc = await described(client)
    created = await client.post("/v1/tasks", json={"prompt": PROMPT, **SMALL})
    doc.check(created, "/v1/tasks")
    task = created.json()
    for event in await collect(server.ws_url, task["id"], task["token"], previews="json"):
        doc.check_event(event)

    url = f"/v1/tasks/{task['id']}/events"
    async with aconnect_sse(client, "GET", url, params={"token": task["token"]}) as source:
        doc.check(source.response, "/v1/tasks/{task_id}/events")
        async for sse in source.aiter_sse():
            doc.check_event(orjson.loads(sse.data))

    detail = await client.get(f"/v1/tasks/{task['id']}")
    doc.check(detail, "/v1/tasks/{task_id}")
    assert detail.json()["outputs"], "a completed task, outputs and all"
    file = detail.json()["outputs"][0]
    answers = {
        "/v1/tasks": [
            await client.get("/v1/tasks", params={"limit": 5}),
            await client.get("/v1/tasks", params={"limit": 0}),
            await client.post("/v1/tasks", json={"prompt": " ", "width": 65}),
            await client.post("/v1/tasks", json={"prompt": PROMPT, "model": "not-served"}),
            await client.post("/v1/tasks", content=b"{"),
        ],
        "/v1/tasks/{task_id}": [
            await client.get("/v1/tasks/no-such-task"),
            await client.get(f"/v1/tasks/{task['id']}", params={"token": "not-its-token"}),
        ],
        "/v1/tasks/{task_id}/cancel": [await client.post(f"/v1/tasks/{task['id']}/cancel")],
        "/v1/tasks/{task_id}/events": [await client.get(url, params={"previews": "binary"})],
        "/v1/tasks/{task_id}/deliveries": [
            await client.get(f"/v1/tasks/{task['id']}/deliveries"),
            await client.get("/v1/tasks/no-such-task/deliveries"),
        ],
        "/v1/deliveries": [await client.get("/v1/deliveries"), await client.get("/v1/deliveries", params={"limit": 0})],
        "/v1/files/{task_id}/{name}": [
            await client.get(f"/v1/files/{task['id']}/{file['name']}"),
            await client.get(f"/v1/files/{task['id']}/{file['name']}", headers={"Accept": "application/octet-stream"}),
            await client.get(f"/v1/files/{task['id']}/none.png"),
        ],
        "/v1/models": [await client.get("/v1/models")],
        "/v1/workers": [await client.get("/v1/workers")],
        "/healthz": [await client.get("/healthz")],
        "/readyz": [await client.get("/readyz")],
        "/metrics": [await client.get("/metrics")],
    }
    for path, replies in answers.items():
        for answer in replies:
            doc.check(answer, path)
    statuses = [answer.status_code for replies in answers.values() for answer in replies]
    assert {200, 400, 403, 404, 409, 422} <= set(statuses), "refusals are checked too"


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
async def test_each_providers_answers_are_the_ones_described(server, client):
    doc = await described(client)
    aiml = {"prompt": PROMPT, "image_size": {"width": 64, "height": 64}, "num_inference_steps": 2}
    segmind = {"prompt": PROMPT, "img_width": 512, "img_height": 512, "num_inference_steps": 10}
    small_wiro = {"prompt": PROMPT, "width": 64, "height": 64, "steps": 2}
    answers: dict[str, list[httpx.Response]] = {
        "/v1/images/generations": [
            await client.post("/v1/images/generations", json={**aiml, "model": "stable-diffusion-v3-medium"}),
            await client.post("/v1/images/generations", json={**aiml, "model": "stable-diffusion-v35-large"}),
            await client.post("/v1/images/generations", json={**aiml, "model": "stable-diffusion-v3-medium", "n": 9}),
            await client.post("/v1/images/generations", json={**aiml, "stream": True, "partial_images": 1}),
        ],
        "/v1/stable-diffusion-3-medium-txt2img": [
            await client.post("/v1/stable-diffusion-3-medium-txt2img", json={**segmind, "base64": True}),
            await client.post("/v1/stable-diffusion-3-medium-txt2img", json=segmind),
            await client.post("/v1/stable-diffusion-3-medium-txt2img", json={**segmind, "samples": 9}),
        ],
        "/api/generate/sdv3/textToImage": [
            await client.post("/api/generate/sdv3/textToImage", json={"prompt": PROMPT, "width": 320, "height": 320}),
            await client.post("/api/generate/sdv3/textToImage", json={"prompt": PROMPT, "width": 321, "height": 320}),
        ],
    }
    queued = await client.post("/v2/stable-diffusion-3-medium-txt2img", json=segmind)
    run = await client.post("/v1/Run/stabilityai/stable-diffusion-3-medium", json=small_wiro)
    answers["/v2/{slug}"] = [queued, await client.post("/v2/stable-diffusion-3-medium-txt2img", json={"samples": 1})]
    unnamed = await client.post("/v1/Run/stabilityai/stable-diffusion-3-medium", json={})  # no prompt
    answers["/v1/Run/{owner}/{project}"] = [run, unnamed]
    request_id, wiro_task = queued.json()["request_id"], run.json()["taskid"]
    await collect(server.ws_url, request_id, None, previews="none")
    await collect(server.ws_url, wiro_task, None, previews="none")
    answers["/v2/requests/{task_id}/status"] = [await client.get(f"/v2/requests/{request_id}/status")]
    answers["/v2/requests/{task_id}"] = [await client.get(f"/v2/requests/{request_id}")]
    token = {"tasktoken": run.json()["socketaccesstoken"]}
    answers["/v1/Task/Detail"] = [await client.post("/v1/Task/Detail", json=token)]
    answers["/v1/Task/Cancel"] = [await client.post("/v1/Task/Cancel", json=token)]  # too late: result false
    answers["/v1/Task/Kill"] = [await client.post("/v1/Task/Kill", json={})]
    for path, replies in answers.items():
        for answer in replies:
            doc.check(answer, path)
    statuses = {path: [answer.status_code for answer in replies] for path, replies in answers.items()}
    assert statuses["/v1/images/generations"] == [201, 201, 400, 200]
    assert statuses["/v1/stable-diffusion-3-medium-txt2img"] == [200, 200, 400]
    assert statuses["/api/generate/sdv3/textToImage"] == [200, 400]
    assert answers["/v1/Task/Detail"][0].json()["tasklist"][0]["outputs"], "the detail of a completed task"
    assert answers["/v1/Task/Cancel"][0].json()["result"] is False


# What a user of a generated client writes: create a task, then (once it is done) download its file.
GENERATED_CLIENT_CREATES = """
import sys
from latentcast_api import AuthenticatedClient
from latentcast_api.api.tasks import tasks_create_task
from latentcast_api.models import TaskParams

client = AuthenticatedClient(base_url=sys.argv[1], token="any key: this server has none")
created = tasks_create_task.sync(client=client, body=TaskParams(prompt="generated", width=64, height=64, num_inference_steps=2))
print(created.id)
"""
GENERATED_CLIENT_DOWNLOADS = """
import sys
from pathlib import Path
from latentcast_api import AuthenticatedClient
from latentcast_api.api.files import files_get_file
from latentcast_api.api.tasks import tasks_get_task

client = AuthenticatedClient(base_url=sys.argv[1], token="any key: this server has none")
task = tasks_get_task.sync(sys.argv[2], client=client)
(output,) = task.outputs
file = files_get_file.sync(task.id, output.name, client=client)
Path(sys.argv[3]).write_bytes(file.payload.read())
print(output.name, output.contenttype)
"""


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
async def test_a_client_generated_from_the_document_creates_a_task_and_downloads_its_file(server, client, tmp_path):
    (tmp_path / "openapi.json").write_bytes((await client.get("/openapi.json")).content)
    bin_dir = Path(sys.executable).parent  # the generator runs ruff on what it wrote: this environment's
    generated = subprocess.run(
        [str(bin_dir / "openapi-python-client"), "generate", "--path", "openapi.json", "--meta", "none",
         "--output-path", "latentcast_api"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "Warning" not in generated.stdout + generated.stderr, generated.stdout + generated.stderr

    def run(script: str, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script, server.base_url, *args], cwd=tmp_path, capture_output=True, text=True,
            timeout=120, env={**os.environ, "PYTHONPATH": str(tmp_path)},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    task_id = run(GENERATED_CLIENT_CREATES)
    events = await collect(server.ws_url, task_id, None, previews="none")
    assert events[-1]["type"] == "task_postprocess_end"
    assert run(GENERATED_CLIENT_DOWNLOADS, task_id, "downloaded.png") == "0.png image/png"
    stored = await client.get(f"/v1/files/{task_id}/0.png")
    assert (tmp_path / "downloaded.png").read_bytes() == stored.content
    assert stored.content.startswith(b"\x89PNG\r\n\x1a\n")
