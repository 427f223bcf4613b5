"""A small disk of the test's own: a tmpfs that a test fills to the last byte and frees again.

Mounting needs root, which the suite runs as here and in CI (the README says so). What fails on
it is what fails on a full disk in production: `write` raises ENOSPC, SQLite answers "database
or disk is full".
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Self

_CHUNKS = (1 << 20, 4096, 1)


class SmallDisk:
    def __init__(self, path: Path, size: str = "20m") -> None:
        self.path = path
        self.size = size
        self._filler = path / ".filler"

    def __enter__(self) -> Self:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.path)], check=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        subprocess.run(["umount", "--lazy", str(self.path)], check=True)

    def fill(self, leave: int = 0) -> None:
        """Take every free byte but `leave` (to the page: a tmpfs hands out whole pages)."""
        with open(self._filler, "ab", buffering=0) as filler:
            for chunk in _CHUNKS:
                while self.free_bytes() - chunk >= leave:
                    try:
                        filler.write(b"\0" * chunk)
                    except OSError as failure:
                        if failure.errno != errno.ENOSPC:
                            raise
                        break

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)

    def free_bytes(self) -> int:
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize
