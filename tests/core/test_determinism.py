"""The same seed, size, steps and batch give byte-identical files; the seed is always recorded."""

from __future__ import annotations

from tests.support import collect


async def run(server, client, **params) -> tuple[dict, list[bytes]]:
    task = (await client.post("/v1/tasks", json={"prompt": "a red fox", "width": 64, "height": 96, "num_inference_steps": 4, **params})).json()
    events = await collect(server.ws_url, task["id"], task["token"], previews="none")
    outputs = events[-1]["message"]
    return (await client.get(f"/v1/tasks/{task['id']}")).json(), [(await client.get(o["url"])).content for o in outputs]


async def test_same_seed_same_bytes(server, client):
    first_detail, first = await run(server, client, seed=1234, num_images=2)
    _, second = await run(server, client, seed=1234, num_images=2)
    assert first == second
    assert first[0] != first[1]  # two images of one batch differ
    _, other = await run(server, client, seed=1235, num_images=2)
    assert other != first
    assert first_detail["seed"] == 1234
    assert [o["seed"] for o in first_detail["outputs"]] == [1234, 1234]


async def test_random_seed_is_recorded_and_reproduces(server, client):
    detail, files = await run(server, client)
    assert isinstance(detail["seed"], int)
    assert detail["params"]["seed"] is None
    _, again = await run(server, client, seed=detail["seed"])
    assert again == files


async def test_every_output_format_is_deterministic(server, client):
    for fmt, magic in (("jpeg", b"\xff\xd8\xff"), ("webp", b"RIFF"), ("png", b"\x89PNG")):
        detail, first = await run(server, client, seed=5, output_format=fmt)
        _, second = await run(server, client, seed=5, output_format=fmt)
        assert first == second
        assert first[0].startswith(magic)
        assert detail["outputs"][0]["contenttype"] == f"image/{fmt}"
