"""The SDK examples of docs/compatibility.md, run as written (the host swapped) against the builtin
model at the providers' default sizes: a reader who pastes them gets images, not a timeout."""

from __future__ import annotations

import ast
import asyncio
import re
from typing import Any

import httpx
import pytest

from tests.compat.helpers import image_of
from tests.support import ROOT, ServerProcess

GUIDE = ROOT / "docs" / "compatibility.md"
DOCUMENTED_HOST = "http://127.0.0.1:8000"


def _guide_example() -> str:
    (code,) = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    return code


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
@pytest.mark.timeout(900)
async def test_the_sdk_examples_run_as_written(server: ServerProcess, client: httpx.AsyncClient) -> None:
    code = _guide_example()
    assert DOCUMENTED_HOST in code
    # the guide's bare expressions are what it shows a reader (their values in comments): each runs
    # once, where it stands, and its value is kept to check (evaluating them again would run each
    # SDK call, a 1024 px task, twice)
    module = ast.parse(code.replace(DOCUMENTED_HOST, server.base_url))
    module.body = [
        ast.parse(f"shown.append({ast.unparse(statement.value)})").body[0] if isinstance(statement, ast.Expr) else statement
        for statement in module.body
    ]
    script = "shown = []\n" + ast.unparse(module)
    namespace: dict[str, Any] = {}
    await asyncio.to_thread(exec, script, namespace)  # the SDKs block; the server's fixture loop must not

    b64_json, jpeg, url = namespace["shown"]
    assert image_of(b64_json).size == (1024, 576)  # openai: size="1024x576"
    assert (image_of(jpeg).format, image_of(jpeg).size) == ("JPEG", (1024, 1024))  # Segmind's default size
    assert image_of((await client.get(url)).content).size == (1024, 1024)
