"""Every rule of POST /v1/tasks: a 4xx that names the field and the rule, and nothing queued."""

from __future__ import annotations

import httpx
import pytest

from tests.support import SMALL

VALID = {"prompt": "a boat", **SMALL}


@pytest.fixture(scope="module")
def api_only(tmp_path_factory):
    """A server with no worker and tight limits: whatever is accepted stays queued, so counts are exact."""
    from tests.support import ServerProcess

    process = ServerProcess(
        tmp_path_factory.mktemp("validation"), "--workers", "0", "--max-pixels", "262144", "--max-queue", "3"
    ).start()
    yield process
    process.kill()


async def queued_count(client: httpx.AsyncClient) -> int:
    return len((await client.get("/v1/tasks", params={"limit": 200})).json()["data"])


CASES = [
    ({"prompt": ""}, "prompt", "string_too_short"),
    ({"prompt": "   "}, "prompt", "not_blank"),
    ({"prompt": "x" * 4001}, "prompt", "string_too_long"),
    ({"prompt": 5}, "prompt", "string_type"),
    ({"negative_prompt": "x" * 4001}, "negative_prompt", "string_too_long"),
    ({"width": 48}, "width", "greater_than_equal"),
    ({"width": 2064}, "width", "less_than_equal"),
    ({"width": 100}, "width", "multiple_of"),
    ({"height": 70}, "height", "multiple_of"),
    ({"width": "wide"}, "width", "int_parsing"),
    ({"width": 64.5}, "width", "int_from_float"),
    ({"num_inference_steps": 0}, "num_inference_steps", "greater_than_equal"),
    ({"num_inference_steps": 101}, "num_inference_steps", "less_than_equal"),
    ({"guidance_scale": -1}, "guidance_scale", "greater_than_equal"),
    ({"guidance_scale": 30.5}, "guidance_scale", "less_than_equal"),
    ({"seed": -1}, "seed", "greater_than_equal"),
    ({"seed": 2**63}, "seed", "less_than_equal"),
    ({"num_images": 0}, "num_images", "greater_than_equal"),
    ({"num_images": 5}, "num_images", "less_than_equal"),
    ({"output_format": "gif"}, "output_format", "literal_error"),
    ({"preview_method": "magic"}, "preview_method", "literal_error"),
    ({"preview_method": "taesd"}, "preview_method", "taesd_weights"),
    ({"preview_every": 0}, "preview_every", "greater_than_equal"),
    ({"preview_format": "png"}, "preview_format", "literal_error"),
    ({"colour": "red"}, "colour", "unknown_field"),
    ({"width": 1024, "height": 1024}, "width", "max_pixels"),
]


@pytest.mark.parametrize(("change", "field", "rule"), CASES, ids=[f"{c[1]}-{c[2]}" for c in CASES])
async def test_bad_field_is_422_naming_field_and_rule(api_only, change, field, rule):
    async with httpx.AsyncClient(base_url=api_only.base_url) as client:
        before = await queued_count(client)
        response = await client.post("/v1/tasks", json={**VALID, **change})
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["type"] == "validation_error"
        assert {"field": field, "rule": rule} in [{"field": f["field"], "rule": f["rule"]} for f in error["fields"]]
        assert field in error["message"] or field in str(error["fields"])
        assert await queued_count(client) == before


async def test_missing_prompt(api_only):
    async with httpx.AsyncClient(base_url=api_only.base_url) as client:
        response = await client.post("/v1/tasks", json=SMALL)
        assert response.status_code == 422
        assert response.json()["error"]["fields"][0]["field"] == "prompt"
        assert response.json()["error"]["fields"][0]["rule"] == "missing"


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (b"{not json", 400, "invalid_json"),
        # NaN, Infinity and huge numbers parse, so that validation names the field (tests/security)
        (b'{"prompt": NaN}', 422, "validation_error"),
        (b'{"prompt": "a", "seed": 1e999}', 422, "validation_error"),
        (b"[1, 2]", 422, "validation_error"),
        (b'"just a string"', 422, "validation_error"),
        (b"\xff\xfe\x00", 400, "invalid_json"),
    ],
)
async def test_malformed_bodies(api_only, body, status, kind):
    async with httpx.AsyncClient(base_url=api_only.base_url) as client:
        before = await queued_count(client)
        response = await client.post("/v1/tasks", content=body, headers={"content-type": "application/json"})
        assert response.status_code == status, response.text
        assert response.json()["error"]["type"] == kind
        assert await queued_count(client) == before


async def test_unknown_model_is_400_listing_served_models(api_only):
    async with httpx.AsyncClient(base_url=api_only.base_url) as client:
        response = await client.post("/v1/tasks", json={**VALID, "model": "dall-e-3"})
        assert response.status_code == 400
        field = response.json()["error"]["fields"][0]
        assert (field["field"], field["rule"]) == ("model", "served_model")
        assert "'dall-e-3' is not served here" in field["message"]
        assert "builtin:tiny" in field["message"] and "sd3-medium" in field["message"]
        accepted = await client.post("/v1/tasks", json={**VALID, "model": "stable-diffusion-v3-medium"})
        assert accepted.status_code == 201
        assert accepted.json()["model"] == "builtin:tiny"


async def test_full_queue_is_429_with_retry_after(api_only):
    async with httpx.AsyncClient(base_url=api_only.base_url) as client:
        while (await queued_count(client)) < 3:
            assert (await client.post("/v1/tasks", json=VALID)).status_code == 201
        response = await client.post("/v1/tasks", json=VALID)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "5"
        assert response.json()["error"]["type"] == "queue_full"
        assert await queued_count(client) == 3
