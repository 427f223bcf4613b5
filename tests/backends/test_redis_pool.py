"""The Redis client's bounded pool against a real redis-server: a command that finds every
connection in use waits for one instead of failing; one that waits past the pool's timeout is
`StoreBusy`, told apart from an outage; each connection carries its process's name."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from harness.processes import RedisServer
from latentcast.server.backends.redis_client import RedisClient, connect
from latentcast.server.cli import main
from latentcast.server.tasks.outage import Backoff
from latentcast.server.tasks.ports import StoreBusy, StoreUnavailable


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", durable=False).start()
    yield server
    server.stop()


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[RedisClient]:
    opened = connect(redis_server.url, pool_size=2, pool_timeout=60)
    yield opened
    await opened.aclose()


async def test_a_command_that_finds_every_connection_in_use_waits_for_one(client, redis_server):
    pool = client.connection_pool
    held = [await pool.get_connection() for _ in range(2)]  # two requests in the middle of their commands
    waiting = [asyncio.create_task(client.incr("answered")) for _ in range(10)]
    done, _ = await asyncio.wait(waiting, timeout=0.5)
    assert not done  # neither refused (redis-py's own pool: MaxConnectionsError at once) nor run
    await pool.release(held.pop())
    assert sorted(await asyncio.gather(*waiting)) == list(range(1, 11))  # each in turn, on the one freed
    mine = [c for c in redis_server.clients() if c["name"] == f"latentcast-{os.uname().nodename}-{os.getpid()}"]
    assert len(mine) == 2  # never more than the pool's size, and named after this process
    await pool.release(held.pop())


async def test_a_wait_past_the_pool_timeout_is_busy_and_an_outage_is_not(redis_server):
    client = connect(redis_server.url, pool_size=2, pool_timeout=0.2)
    pool = client.connection_pool
    held = [await pool.get_connection() for _ in range(2)]
    with pytest.raises(StoreBusy, match=r"^Redis: all 2 connections stayed in use for 0\.2 s$"):
        await client.get("k")
    with pytest.raises(StoreBusy):  # a transaction waits for its connection the same way
        async with client.pipeline() as tx:
            await tx.set("k", "v").execute()
    for connection in held:
        await pool.release(connection)
    assert await client.set("k", "v")
    redis_server.stop(signal.SIGKILL)
    with pytest.raises(StoreUnavailable) as outage:
        await client.get("k")
    assert not isinstance(outage.value, StoreBusy) and "stayed in use" not in str(outage.value)
    await client.aclose()


async def test_a_busy_backend_is_logged_as_busy_not_as_unreachable(caplog):
    caplog.set_level(logging.WARNING, logger="test.backoff")
    busy = Backoff("heartbeat", logging.getLogger("test.backoff"))
    await busy.failed(StoreBusy("Redis: all 50 connections stayed in use for 10 s"))
    busy.succeeded()
    down = Backoff("heartbeat", logging.getLogger("test.backoff"))
    await down.failed(StoreUnavailable("Redis: Connection refused"))
    down.succeeded()
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "heartbeat: backend busy (Redis: all 50 connections stayed in use for 10 s); retrying"
    assert lines[1].startswith("heartbeat: backend no longer busy after ")
    assert lines[2] == "heartbeat: backend unreachable (Redis: Connection refused); retrying"
    assert lines[3].startswith("heartbeat: backend reachable again after ")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["serve", "--workers", "0", "--redis-pool-size", "3"], "--redis-pool-size must be at least --workers + 4 = 4"),
        (["worker", "--workers", "2", "--redis-pool-size", "5"], "--redis-pool-size must be at least --workers + 4 = 6"),
    ],
)
def test_a_pool_too_small_for_the_process_is_refused_before_it_starts(args, error, capsys):
    assert main([*args, "--broker", "redis://127.0.0.1:1/0"]) == 2
    assert error in capsys.readouterr().err


def test_a_pool_timeout_of_no_time_is_refused(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--broker", "redis://127.0.0.1:1/0", "--redis-pool-timeout", "0"])
    assert exited.value.code == 2
    assert "argument --redis-pool-timeout: must be more than 0 seconds, got 0" in capsys.readouterr().err


async def test_a_redis_that_refuses_writes_is_an_outage_and_other_errors_stay_errors(client):
    """Redis out of memory (OOM), or with a disk it cannot write (MISCONF), answers but refuses
    every write: the same StoreUnavailable as an outage, so requests get 503 and workers wait."""
    from redis.exceptions import ResponseError

    await client.config_set("maxmemory", "1")
    await client.config_set("maxmemory-policy", "noeviction")
    with pytest.raises(StoreUnavailable, match="maxmemory"):
        await client.set("refused", "1")
    with pytest.raises(StoreUnavailable, match="maxmemory"):
        async with client.pipeline(transaction=True) as tx:
            await tx.set("refused", "1").incr("refused-too").execute()
    await client.config_set("maxmemory", "0")
    assert await client.set("accepted", "1")
    with pytest.raises(ResponseError, match="WRONGTYPE"):  # the request's own error: not an outage
        await client.lpush("accepted", "x")
