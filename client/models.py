"""What the HTTP API returns, as typed objects: a task's detail, a page of tasks, an output (and
an output with its bytes, `GeneratedImage`), a webhook delivery.

Each keeps the server's JSON in `raw`, so a field added to the server is never out of reach.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import PIL.Image

    from latentcast.client.image_info import GenerationInfo

FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


@dataclasses.dataclass(frozen=True, slots=True)
class Output:
    """One generated image: `name` (e.g. `0.png`), its content type, size in bytes, URL and pixels."""

    name: str
    contenttype: str
    size: int
    url: str
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    raw: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def extension(self) -> str:
        """The file extension with its dot (`.png`), from the name."""
        dot = self.name.rfind(".")
        return self.name[dot:] if dot > 0 else ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Output:
        return cls(
            name=str(data.get("name", "")),
            contenttype=str(data.get("contenttype", "application/octet-stream")),
            size=int(data.get("size") or 0),
            url=str(data.get("url", "")),
            width=data.get("width"),
            height=data.get("height"),
            seed=data.get("seed"),
            raw=data,
        )


def decode_image(data: bytes) -> PIL.Image.Image:
    """Encoded image bytes as a loaded PIL image."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@dataclasses.dataclass(frozen=True, slots=True)
class GeneratedImage:
    """One image of a finished task with its bytes, as the server stored them: what `run()` returns.

    The bytes carry the parameters that made the image (`info`); `save` writes them unchanged.
    """

    task_id: str
    output: Output
    data: bytes = dataclasses.field(repr=False)

    @property
    def info(self) -> GenerationInfo | None:
        """The prompt and settings the file carries."""
        from latentcast.client.image_info import read_info

        return read_info(self.data)

    def image(self) -> PIL.Image.Image:
        """The image decoded as a PIL image."""
        return decode_image(self.data)

    def save(self, path: str | Path) -> Path:
        """Write the bytes as they came (no re-encoding: the parameters stay in the file)."""
        path = Path(path)
        path.write_bytes(self.data)
        return path


@dataclasses.dataclass(frozen=True, slots=True)
class TaskInfo:
    """A task's detail (`GET /v1/tasks/{id}`): status, parameters, timings, outputs, error.

    `token` is set only in the answer to a submit (the server never shows it again).
    """

    id: str
    status: str
    model: str | None
    seed: int | None
    params: dict[str, Any]
    created_at: float | None
    times: dict[str, float]
    attempt: int
    worker: str | None
    last_seq: int
    outputs: list[Output]
    error: dict[str, Any] | None
    position: int | None
    urls: dict[str, str]
    token: str | None = None
    raw: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        """True once the task completed, failed or was cancelled."""
        return self.status in FINAL_STATUSES

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskInfo:
        return cls(
            id=str(data["id"]),
            status=str(data.get("status", "")),
            model=data.get("model"),
            seed=data.get("seed"),
            params=dict(data.get("params") or {}),
            created_at=data.get("created_at"),
            times=dict(data.get("times") or {}),
            attempt=int(data.get("attempt") or 0),
            worker=data.get("worker"),
            last_seq=int(data.get("last_seq") or 0),
            outputs=[Output.from_dict(o) for o in data.get("outputs") or [] if isinstance(o, dict)],
            error=data.get("error"),
            position=data.get("position"),
            urls=dict(data.get("urls") or {}),
            token=data.get("token"),
            raw=data,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of `GET /v1/tasks`, newest first; pass `next_cursor` to `list()` for the next."""

    data: list[TaskInfo]
    next_cursor: str | None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None

    def __iter__(self) -> Iterator[TaskInfo]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook delivery of a task (`GET /v1/tasks/{id}/deliveries`): which event, and how its
    attempts went. `state` is `pending`, `delivered` or `failed` (given up)."""

    id: str
    seq: int
    event: str
    state: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: float | None
    delivered_at: float | None
    failed_at: float | None
    raw: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Delivery:
        return cls(
            id=str(data["id"]),
            seq=int(data.get("seq") or 0),
            event=str(data.get("event", "")),
            state=str(data.get("state", "")),
            attempts=int(data.get("attempts") or 0),
            last_status_code=data.get("last_status_code"),
            last_error=data.get("last_error"),
            next_attempt_at=data.get("next_attempt_at"),
            delivered_at=data.get("delivered_at"),
            failed_at=data.get("failed_at"),
            raw=data,
        )
