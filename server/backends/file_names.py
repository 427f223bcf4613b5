"""Which output names a file store may read: the ones a worker writes ("0.png"), nothing else.

Names are made by the server, never taken from users; this guards the read side, where the task
id and the name come from a request's path.
"""

from __future__ import annotations

import re

_TASK_ID = re.compile(r"^[0-9a-f]{16}$")
_OUTPUT_NAME = re.compile(r"^[0-9]+\.(png|jpg|webp)$")


def safe_output_name(task_id: str, name: str) -> bool:
    return safe_task_id(task_id) and bool(_OUTPUT_NAME.match(name))


def safe_task_id(task_id: str) -> bool:
    """A task id as the server makes them: a folder name that cannot leave the outputs root."""
    return bool(_TASK_ID.match(task_id))
