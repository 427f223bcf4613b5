"""Output files on local disk, written atomically: a reader never sees half a file.

A write the disk refuses (full, read-only, an I/O error) leaves nothing behind and is raised as
`StoreUnavailable`: the worker's event pump waits and writes it again, as it does for its events.

Not fenced: in one process nobody can take a task over, and a folder shared by Redis workers
(`--outputs-dir`) has no atomic check-and-write (docs/scale-out.md says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path

from latentcast.server.backends.file_names import safe_output_name, safe_task_id
from latentcast.server.tasks.ports import Fence, StoreUnavailable


class DiskFiles:
    def __init__(self, root: Path, public_url: str) -> None:
        self.root = root
        self.public_url = public_url.rstrip("/")

    def url(self, task_id: str, name: str) -> str:
        return f"{self.public_url}/v1/files/{task_id}/{name}"

    async def write(self, task_id: str, name: str, data: bytes, fence: Fence) -> None:
        await asyncio.to_thread(self._write, task_id, name, data)

    def _write(self, task_id: str, name: str, data: bytes) -> None:
        folder = self.root / task_id
        target = folder / name
        temporary = folder / f".{name}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except OSError as failure:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            raise StoreUnavailable(f"outputs folder {self.root}: {failure.strerror or failure}") from failure

    async def delete(self, task_id: str) -> None:
        if safe_task_id(task_id):
            await asyncio.to_thread(shutil.rmtree, self.root / task_id, True)

    async def read(self, task_id: str, name: str) -> bytes | None:
        if not safe_output_name(task_id, name):
            return None
        path = self.root / task_id / name
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError):
            return None
