"""Which names the served model answers to: the providers' ids by default, `--model-alias` adding
names to them, `--replace-model-aliases` serving only the names given."""

from __future__ import annotations

import httpx

from tests.support import ServerProcess

# both AI/ML API pages' model ids (000: SD3 Medium, 001: SD3.5 Large), Segmind's and Wiro's
PROVIDER_IDS = {
    "stable-diffusion-v3-medium",
    "stable-diffusion-v35-large",
    "stable-diffusion-3-medium",
    "stabilityai/stable-diffusion-3-medium",
}


async def _aliases(server: ServerProcess) -> set[str]:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        models = (await client.get("/v1/models")).json()["data"]
    assert [model["id"] for model in models] == ["builtin:tiny"]
    return set(models[0]["aliases"])


async def test_every_providers_id_is_served_by_default(server: ServerProcess) -> None:
    assert await _aliases(server) >= PROVIDER_IDS


async def test_model_alias_adds_a_name(aliased_server: ServerProcess) -> None:
    assert await _aliases(aliased_server) >= PROVIDER_IDS | {"sd3-large", "sd3-large-turbo"}


async def test_replace_model_aliases_serves_only_the_names_given(bare_server: ServerProcess) -> None:
    assert await _aliases(bare_server) == {"house-model"}
