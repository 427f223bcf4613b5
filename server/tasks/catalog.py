"""Which models this deployment serves, and the provider names that reach them.

Hosted SD3 APIs name their models differently (`stable-diffusion-v3-medium`, `sd3-medium`,
`stabilityai/stable-diffusion-3-medium`, ...). Each served model answers to its own name and to
the aliases the operator gives it; a name nobody serves is refused with the list of those that are.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable

# What an SD3 Medium checkpoint is called across the providers in docs/compatibility.md; the
# default model answers to these unless the operator says otherwise.
SD3_MEDIUM_ALIASES = (
    "stable-diffusion-v3-medium",
    "stable-diffusion-3-medium",
    "sd3-medium",
    "stabilityai/stable-diffusion-3-medium",
    "stabilityai/stable-diffusion-3-medium-diffusers",
)
# The names the served model answers to unless the operator replaces them (--replace-model-aliases):
# the SD3 Medium names, and the AI/ML API's SD3.5 Large id, so that both of its pages' examples run.
DEFAULT_ALIASES = (*SD3_MEDIUM_ALIASES, "stable-diffusion-v35-large")

# What each builtin model (server.engine.builtin) knows, in one sentence: said at start-up, in
# /v1/models and on the pages, so nobody takes a small model for a broken one.
BUILTIN_MODELS = {
    "builtin:shapes": (
        "draws simple scenes: a circle, square, triangle, star or ring, small or large, in one of 8 colours, "
        "on a coloured background, in the middle or a corner (\"a large red circle on a blue background, "
        "top left\"), best at 256 and 512 px"
    ),
    "builtin:tiny": "random weights: its pictures are noise (the fastest, for tests)",
}
DEFAULT_MODEL = "builtin:shapes"
MISS_REFRESH_SECONDS = 0.25


class UnknownModel(ValueError):
    def __init__(self, name: str, served: list[str]) -> None:
        listing = f"served models: {', '.join(served)}" if served else "no live worker serves any model now"
        super().__init__(f"model {name!r} is not served here; {listing}")
        self.name = name
        self.served = served


@dataclasses.dataclass(frozen=True, slots=True)
class ServedModel:
    name: str
    aliases: tuple[str, ...] = ()

    def describe(self) -> dict[str, object]:
        described: dict[str, object] = {"id": self.name, "object": "model", "aliases": list(self.aliases)}
        if self.name in BUILTIN_MODELS:
            described["description"] = BUILTIN_MODELS[self.name]
        return described


class ModelCatalog:
    """The models served, by name and alias. On Redis it follows the live workers (`follow`, read
    again every second and whenever a name is missing), so a request that arrives the moment a
    worker came alive finds its model, as /readyz, which reads the same heartbeats, already says."""

    def __init__(
        self, models: list[ServedModel], follow: Callable[[], Awaitable[list[ServedModel]]] | None = None
    ) -> None:
        self.replace(models)
        self._follow = follow
        self._refreshed_at = -MISS_REFRESH_SECONDS

    async def refresh(self) -> None:
        """Serve what the live workers serve now (nothing to do for a fixed catalog)."""
        if self._follow is not None:
            self._refreshed_at = time.monotonic()
            self.replace(await self._follow())

    async def resolve_now(self, name: str | None) -> str:
        """`resolve`, after reading the live workers again if the name is missing: always while
        none is known (a worker may have come alive this moment), at most every MISS_REFRESH_SECONDS
        for a name the others do not serve (so that wrong names cannot make every request a scan)."""
        if self._follow is not None and not (self.models and (name is None or self.serves(name))):
            if not self.models or time.monotonic() - self._refreshed_at >= MISS_REFRESH_SECONDS:
                await self.refresh()
        return self.resolve(name)

    async def serves_now(self, name: str) -> bool:
        try:
            await self.resolve_now(name)
        except UnknownModel:
            return False
        return True

    def replace(self, models: list[ServedModel]) -> None:
        """Serve exactly these models from now on (the same model named twice counts once)."""
        unique: dict[str, ServedModel] = {}
        for model in models:
            unique.setdefault(model.name, model)
        self.models = list(unique.values())
        self._names = {alias: m.name for m in self.models for alias in (m.name, *m.aliases)}

    @property
    def default(self) -> str:
        if not self.models:
            raise UnknownModel("(default)", [])
        return self.models[0].name

    def serves(self, name: str) -> bool:
        return name in self._names

    def resolve(self, name: str | None) -> str:
        """The served model's own name for `name` (None: the default model)."""
        if name is None:
            return self.default
        try:
            return self._names[name]
        except KeyError:
            raise UnknownModel(name, sorted(self._names)) from None
