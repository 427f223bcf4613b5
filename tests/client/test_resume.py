"""`Task.events()` survives dropped sockets: it reconnects with backoff and resumes with `since`.

The client talks to the real server through a TCP proxy that the test cuts mid-task, closing the
socket under both ends without a close frame; the caller must still see every event exactly
once, in order, exactly as the server logged them.
"""

from __future__ import annotations

import pytest

from latentcast.client import APIConnectionError, AsyncClient, ProgressEvent
from tests.client.helpers import ENDLESS, LONG
from tests.client.proxy import TcpProxy
from tests.support import ServerProcess, collect


def _comparable(message: object) -> object:
    """A message without its preview (the replay keeps only the newest preview)."""
    if isinstance(message, dict):
        return {k: v for k, v in message.items() if k != "preview"}
    return message


async def test_resumes_after_the_socket_is_cut_mid_task(api: AsyncClient, server: ServerProcess) -> None:
    task = await api.submit("a storm at sea", **{**LONG, "num_inference_steps": 30})
    async with TcpProxy(server.port) as proxy, AsyncClient(proxy.url, reconnect_delay=(0.05, 0.2)) as through_proxy:
        follower = through_proxy.task(task.id, task.token)
        events = []
        statuses_at_cut = []
        async for event in follower.events(previews="binary"):
            events.append(event)
            if isinstance(event, ProgressEvent) and event.step in (2, 12):
                statuses_at_cut.append((await api.get(task.id)).status)
                # the second time, reconnects are refused for a while: backoff, then resume
                assert proxy.cut(refuse_for=0.3 if event.step == 12 else 0.0) == 2
    assert statuses_at_cut == ["running", "running"]  # both cuts happened mid-task
    assert follower.reconnects >= 2 and proxy.accepted >= 3 and proxy.refused >= 1

    # every event exactly once, in order, and exactly what the server logged
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].terminal and events[-1].type == "task_postprocess_end"
    logged = await collect(server.ws_url, task.id, task.token, previews="none")
    assert [(e.seq, e.type, _comparable(e.message)) for e in events] == [
        (e["seq"], e["type"], e["message"]) for e in logged
    ]
    steps = [e.step for e in events if isinstance(e, ProgressEvent)]
    assert steps == list(range(1, 31))
    # previews kept arriving as image bytes after the reconnects
    late = [e for e in events if isinstance(e, ProgressEvent) and e.step > 12 and e.preview is not None]
    assert late and late[-1].preview is not None and late[-1].preview.image(enlarged=True).size == (64, 64)
    assert [o.name for o in await follower.result()] == ["0.png"]


async def test_gives_up_with_a_connection_error_when_the_server_stays_away(
    api: AsyncClient, server: ServerProcess
) -> None:
    task = await api.submit("a storm at sea", **ENDLESS)
    async with (
        TcpProxy(server.port) as proxy,
        AsyncClient(proxy.url, max_reconnects=3, reconnect_delay=(0.02, 0.05)) as through_proxy,
    ):
        follower = through_proxy.task(task.id, task.token)
        seen = []
        with pytest.raises(APIConnectionError, match="could not reconnect after 3 attempts"):
            async for event in follower.events(previews="none"):
                seen.append(event.seq)
                if isinstance(event, ProgressEvent):
                    proxy.cut(refuse_for=60)
    assert seen == list(range(1, len(seen) + 1)) and proxy.refused == 3
    await task.cancel()

