"""The native fields the compatibility endpoints need: `scheduler`, `shift`, and sizes in steps of 8."""

from __future__ import annotations

import typing

import httpx
import pytest

from latentcast.server.engine.schedulers import build_scheduler, configure_scheduler
from latentcast.server.tasks.params import TaskParams
from latentcast.wire import DEFAULT_SCHEDULER, PREVIEW_FORMATS, PREVIEW_METHODS, SCHEDULERS
from tests.compat.helpers import image_of, native_task
from tests.support import SMALL, ServerProcess, collect, collect_from_the_start, previewed_steps, types


def test_the_native_choices_are_the_wires_declarations() -> None:
    fields = TaskParams.model_fields
    assert typing.get_args(fields["scheduler"].annotation) == SCHEDULERS
    assert fields["scheduler"].default == DEFAULT_SCHEDULER
    assert typing.get_args(fields["preview_method"].annotation) == PREVIEW_METHODS
    assert typing.get_args(fields["preview_format"].annotation) == PREVIEW_FORMATS


@pytest.mark.parametrize("name", SCHEDULERS)
async def test_a_task_with_each_scheduler_completes(
    server: ServerProcess, client: httpx.AsyncClient, name: str
) -> None:
    body = {"prompt": "native", "scheduler": name, **SMALL, "preview_every": 1}
    task, events = await collect_from_the_start(server, client, body)
    assert types(events)[-1] == "task_postprocess_end"
    # one progress event per step, whatever the solver, each step previewing its denoised estimate
    previews = [e["message"]["preview"] for e in previewed_steps(events, SMALL["num_inference_steps"])]
    latent_size = (SMALL["width"] // 8, SMALL["height"] // 8)  # latent2rgb: one pixel per latent cell
    assert {image_of(p["data"]).size for p in previews} == {latent_size}
    detail = (await client.get(f"/v1/tasks/{task['id']}")).json()
    assert detail["params"]["scheduler"] == name and detail["params"]["shift"] is None


async def test_shift_is_recorded_and_used(server: ServerProcess, client: httpx.AsyncClient) -> None:
    plain = await native_task(client, **SMALL, seed=7)
    shifted = await native_task(client, **SMALL, seed=7, shift=6.0)
    for task in (plain, shifted):
        assert types(await collect(server.ws_url, task["id"], task["token"]))[-1] == "task_postprocess_end"
    images = []
    for task in (plain, shifted):
        detail = (await client.get(f"/v1/tasks/{task['id']}")).json()
        images.append((await client.get(detail["outputs"][0]["url"])).content)
    assert (await client.get(f"/v1/tasks/{shifted['id']}")).json()["params"]["shift"] == 6.0
    assert images[0] != images[1], "the same seed with another shift walks other sigmas"


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({"scheduler": "euler_a"}, "scheduler", "literal_error"),
        ({"shift": 0}, "shift", "greater_than"),
        ({"shift": 101}, "shift", "less_than_equal"),
        ({"width": 100}, "width", "multiple_of"),
    ],
)
async def test_bad_scheduler_fields_are_refused(client: httpx.AsyncClient, body: dict, field: str, rule: str) -> None:
    answer = await client.post("/v1/tasks", json={"prompt": "x", **body})
    assert answer.status_code == 422
    assert (field, rule) in [(f["field"], f["rule"]) for f in answer.json()["error"]["fields"]]


async def test_a_multiple_of_8_is_generated_exactly(server: ServerProcess, client: httpx.AsyncClient) -> None:
    # the pipeline needs multiples of 16: 72x88 is generated as 80x96 and centre-cropped
    task = await native_task(client, width=72, height=88, num_inference_steps=2)
    events = await collect(server.ws_url, task["id"], task["token"])
    start = next(e for e in events if e["type"] == "task_start")
    assert (start["message"]["width"], start["message"]["height"]) == (72, 88)
    output = events[-1]["message"][0]
    assert (output["width"], output["height"]) == (72, 88)
    assert image_of((await client.get(output["url"])).content).size == (72, 88)


def test_the_models_own_scheduler_comes_back_after_another(tiny_pipe: object) -> None:
    own = tiny_pipe.scheduler  # type: ignore[attr-defined]
    configure_scheduler(tiny_pipe, "unipc", 4.0)
    assert type(tiny_pipe.scheduler).__name__ == "UniPCMultistepScheduler"  # type: ignore[attr-defined]
    assert tiny_pipe.scheduler.config.flow_shift == 4.0  # type: ignore[attr-defined]
    configure_scheduler(tiny_pipe, "flow_match_euler", 2.0)
    assert tiny_pipe.scheduler is not own and tiny_pipe.scheduler.config.shift == 2.0  # type: ignore[attr-defined]
    configure_scheduler(tiny_pipe, None, None)
    assert tiny_pipe.scheduler is own  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unknown scheduler"):
        build_scheduler("ddim", own.config, None)


@pytest.fixture(scope="module")
def tiny_pipe(tmp_path_factory: pytest.TempPathFactory) -> object:
    from latentcast.server.engine.loader import load_pipeline

    return load_pipeline("builtin:tiny", data_dir=tmp_path_factory.mktemp("tiny")).pipe


async def test_an_unknown_scheduler_is_refused_with_the_known_ones(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/tasks", json={"prompt": "x", "scheduler": "DPM++ 2M"})  # a provider's name
    assert answer.status_code == 422
    [field] = answer.json()["error"]["fields"]
    assert field["field"] == "scheduler" and all(f"'{name}'" in field["message"] for name in SCHEDULERS)
