"""Generated bodies against every JSON endpoint of a real server: random JSON values, near misses of
valid requests (a field dropped, retyped or added, a key given twice) and random bytes, under
random content types.

Whatever comes, the answer is a 2xx or a 4xx with a JSON body in the endpoint's shape, and nothing
is queued. The server runs with `--max-queue 0`, so even a request that passes every check is
refused (429) at the very end: validation runs in full and the task count stays at 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.helpers import BODIES, in_its_shape
from tests.support import ServerProcess

ENDPOINTS = {**BODIES, "/v1/tasks/0123456789abcdef/cancel": {}}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@st.composite
def near_misses(draw: st.DrawFn, template: dict[str, Any]) -> bytes:
    """The endpoint's valid body with one to three things wrong with it."""
    body = dict(template)
    duplicate = None
    for _ in range(draw(st.integers(1, 3))):
        change = draw(st.sampled_from(["drop", "retype", "add", "duplicate"]))
        field = draw(st.sampled_from(sorted(body) or ["prompt"]))
        if change == "drop":
            body.pop(field, None)
        elif change == "retype":
            body[field] = draw(json_values)
        elif change == "add":
            body[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
        else:
            duplicate = (field, draw(json_values))
    text = json.dumps(body)  # NaN and Infinity as Python writes them, which the parser must take
    if duplicate is not None:
        text = text[:-1] + (", " if body else "") + f"{json.dumps(duplicate[0])}: {json.dumps(duplicate[1])}}}"
    return text.encode()


def bodies(path: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        json_values.map(lambda value: json.dumps(value).encode()),
        near_misses(ENDPOINTS[path]),
        st.binary(max_size=200),
        st.just(json.dumps(ENDPOINTS[path]).encode()),  # valid: refused only by the full queue
    )


requests = st.sampled_from(sorted(ENDPOINTS)).flatmap(
    lambda path: st.tuples(
        st.just(path),
        bodies(path),
        st.sampled_from(["application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=B",
                         "text/plain", ""]),
    )
)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = ServerProcess(tmp_path_factory.mktemp("fuzz"), "--workers", "0", "--max-queue", "0").start()
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        yield http
        assert http.get("/v1/tasks").json()["data"] == []  # nothing was ever queued
        assert server.process is not None and server.process.poll() is None
        assert "Traceback" not in server.log(), server.log()[-3000:]
    server.stop()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests)
def test_any_body_gets_a_2xx_or_a_4xx_in_its_apis_shape(fuzzed: httpx.Client, request: tuple[str, bytes, str]) -> None:
    path, body, content_type = request
    answer = fuzzed.post(path, content=body, headers={"content-type": content_type} if content_type else {})
    if path.endswith("/cancel"):  # the native API, on a task that does not exist
        assert answer.status_code == 404 and answer.json()["error"]["type"] == "not_found"
    else:
        in_its_shape(path, answer)
    assert answer.status_code != 201
