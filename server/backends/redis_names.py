"""The Redis layout, in one place (see docs/scale-out.md):

    {p}:task:{id}        hash: record (JSON), status, token, created_at, last_seq,
                         fence_owner, fence_attempt, cancel_requested
    {p}:token:{token}    the task id a token opens
    {p}:tasks            zset of every task id by created_at; {p}:status:{status} per status
    {p}:events:{id}      stream of the task's events, entry id 0-{seq} (XRANGE replays from a seq)
    {p}:preview:{id}     hash: the newest preview: seq, meta (JSON [format, width, height,
                         image_width, image_height]), data
    {p}:feed             capped stream of every event, previews included: what front-ends follow
    {p}:jobs             stream of jobs read by the consumer group "workers"
    {p}:queue            zset of waiting task ids by arrival: the queue positions
    {p}:queue:seq        the arrival counter; {p}:positions: the positions last announced
    {p}:cancel           pub/sub channel of cancel requests for running tasks
    {p}:worker:{name}    a live worker's heartbeat (expires when it stops beating)
    {p}:file:{id}:{name} an output file
    {p}:files:{id}       set of the task's output file keys (dropped with them if it fails or is cancelled)
    {p}:delivery:{id}    hash: a webhook delivery (task, seq, type, url, format, owner, host,
                         created_at, state, attempts, last_status, last_error, next_at, done_at, lease)
    {p}:deliveries:{id}  zset of a task's delivery ids by seq (its task hash's `delivery_head` is
                         the one pending now: the next waits for it)
    {p}:outbox           zset of the deliveries that are their task's head, by when they are due
                         (a claim moves one to the end of its lease)
    {p}:outbox:pending   zset of every pending delivery by created_at (the backlog)
    {p}:outbox:recent    zset of the newest deliveries by created_at, capped (what the dashboard lists)
    {p}:webhook_secret:{owner}  a key's webhook signing secrets (JSON); owner `server` when keys are off
    {p}:apikey:{digest}  an API key's record (JSON), by the SHA-256 of the key
    {p}:apikeys          hash: key id -> digest, every key ever created
    {p}:nonce:{key id}:{nonce}  a Wiro nonce that key used (expires after the replay window)
"""

from __future__ import annotations

import dataclasses

GROUP = "workers"


@dataclasses.dataclass(frozen=True, slots=True)
class RedisNames:
    """The name of every Redis key the backend uses, under one prefix (`--redis-prefix`)."""

    prefix: str = "lc"

    def task(self, task_id: str) -> str:
        return f"{self.prefix}:task:{task_id}"

    def token(self, token: str) -> str:
        return f"{self.prefix}:token:{token}"

    @property
    def tasks(self) -> str:
        return f"{self.prefix}:tasks"

    def status(self, status: str) -> str:
        return f"{self.prefix}:status:{status}"

    def events(self, task_id: str) -> str:
        return f"{self.prefix}:events:{task_id}"

    def preview(self, task_id: str) -> str:
        return f"{self.prefix}:preview:{task_id}"

    @property
    def feed(self) -> str:
        return f"{self.prefix}:feed"

    @property
    def jobs(self) -> str:
        return f"{self.prefix}:jobs"

    @property
    def queue(self) -> str:
        return f"{self.prefix}:queue"

    @property
    def queue_seq(self) -> str:
        return f"{self.prefix}:queue:seq"

    @property
    def positions(self) -> str:
        return f"{self.prefix}:positions"

    @property
    def cancel(self) -> str:
        return f"{self.prefix}:cancel"

    def worker(self, name: str) -> str:
        return f"{self.prefix}:worker:{name}"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:worker:*"

    def file(self, task_id: str, name: str) -> str:
        return f"{self.prefix}:file:{task_id}:{name}"

    def upload(self, upload_id: str) -> str:
        return f"{self.prefix}:upload:{upload_id}"

    def files(self, task_id: str) -> str:
        return f"{self.prefix}:files:{task_id}"

    def delivery(self, delivery_id: str) -> str:
        return f"{self.prefix}:delivery:{delivery_id}"

    def deliveries(self, task_id: str) -> str:
        return f"{self.prefix}:deliveries:{task_id}"

    @property
    def outbox(self) -> str:
        return f"{self.prefix}:outbox"

    @property
    def outbox_pending(self) -> str:
        return f"{self.prefix}:outbox:pending"

    @property
    def outbox_recent(self) -> str:
        return f"{self.prefix}:outbox:recent"

    def webhook_secret(self, owner: str) -> str:
        return f"{self.prefix}:webhook_secret:{owner}"

    def apikey(self, digest: str) -> str:
        return f"{self.prefix}:apikey:{digest}"

    @property
    def apikeys(self) -> str:
        return f"{self.prefix}:apikeys"

    def nonce(self, key_id: str, nonce: str) -> str:
        return f"{self.prefix}:nonce:{key_id}:{nonce}"
