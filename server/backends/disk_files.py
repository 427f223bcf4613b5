"""Output files on local disk, written atomically: a reader never sees half a file."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from latentcast.server.backends.file_names import safe_output_name


class DiskFiles:
    def __init__(self, root: Path, public_url: str) -> None:
        self.root = root
        self.public_url = public_url.rstrip("/")

    def write(self, task_id: str, name: str, data: bytes) -> tuple[int, str]:
        """Store one output; returns its size and its URL."""
        folder = self.root / task_id
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        temporary = folder / f".{name}.tmp"
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        return len(data), f"{self.public_url}/v1/files/{task_id}/{name}"

    async def read(self, task_id: str, name: str) -> bytes | None:
        if not safe_output_name(task_id, name):
            return None
        path = self.root / task_id / name
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError):
            return None
