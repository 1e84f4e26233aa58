"""How the orchestrator's processes coordinate: one process on its own, or many on Redis.

An engine gives the job manager four things:

- **leases**: one job per instance. ``claim`` takes the instance for a job, or
  names the job that holds it; the worker running the job renews the lease, and
  a lease nobody renews expires, which is how a dead worker's job is found;
- **numbered event streams** (a job's output, a client's events): one id
  sequence per stream whatever process appends, read from any id on;
- **dispatch**: hand a queued job to a worker;
- **signals**: a cancel request that reaches the worker running the job, and
  the right to start a drift round.

:class:`LocalEngine` keeps all of it in this process (``spawnit serve`` with
no engine configured). :class:`RedisEngine` keeps it in Redis or Valkey 7
(``SPAWNIT_REDIS_URL``): a saq queue consumed by any number of workers, leases
as keys with an expiry, events on Redis Streams.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

LOG = logging.getLogger("spawnit.engine")
IDLE_SECONDS = 1.0  # a follower yields None this often while nothing happens, so its caller can look around


class EngineError(RuntimeError):
    """The engine's settings are wrong or it cannot be reached (a message naming the setting)."""


def now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Engine(Protocol):
    shared: bool  # True when other processes share this engine's leases and streams

    def claim(self, key: str, holder: str, ttl: float) -> str | None: ...

    def renew(self, key: str, holder: str, ttl: float) -> bool: ...

    def release(self, key: str, holder: str) -> None: ...

    def holder(self, key: str) -> str | None: ...

    def append(self, stream: str, kind: str, data: Any, *, keep: int, start_after: int = 0) -> dict[str, Any]: ...

    def read(self, stream: str, after: int = 0) -> list[dict[str, Any]] | None: ...

    def follow(self, stream: str, after: int = 0) -> AsyncIterator[dict[str, Any] | None]: ...

    def last_id(self, stream: str) -> int: ...

    def retire(self, stream: str) -> None: ...

    def dispatch(self, job_id: str, run: Callable[[str], object]) -> None: ...

    def request_cancel(self, job_id: str) -> None: ...

    def cancel_requested(self, job_id: str) -> bool: ...

    def once_per(self, name: str, seconds: float) -> bool: ...

    def close(self) -> None: ...


class _Stream:
    """An in-process stream: events numbered from 1, the newest ``keep`` kept."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.last = 0


class LocalEngine:
    """Everything in this process: leases in a dict, streams in lists, jobs on threads."""

    shared = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[str, tuple[str, float]] = {}  # key -> (holder, monotonic deadline)
        self._streams: dict[str, _Stream] = {}
        self._cancels: set[str] = set()
        self._once: dict[str, float] = {}

    def _current(self, key: str) -> str | None:
        lease = self._leases.get(key)
        if lease is not None and lease[1] <= time.monotonic():
            del self._leases[key]
            return None
        return lease[0] if lease else None

    def claim(self, key: str, holder: str, ttl: float) -> str | None:
        with self._lock:
            current = self._current(key)
            if current is None:
                self._leases[key] = (holder, time.monotonic() + ttl)
                return None
            return None if current == holder else current

    def renew(self, key: str, holder: str, ttl: float) -> bool:
        with self._lock:
            if self._current(key) != holder:
                return False
            self._leases[key] = (holder, time.monotonic() + ttl)
            return True

    def release(self, key: str, holder: str) -> None:
        with self._lock:
            if self._current(key) == holder:
                del self._leases[key]

    def holder(self, key: str) -> str | None:
        with self._lock:
            return self._current(key)

    def append(self, stream: str, kind: str, data: Any, *, keep: int, start_after: int = 0) -> dict[str, Any]:
        """The next event of ``stream``; a stream not seen yet numbers from ``start_after + 1``."""
        with self._lock:
            log = self._streams.get(stream)
            if log is None:
                log = self._streams[stream] = _Stream()
                log.last = start_after
            log.last += 1
            event = {"id": log.last, "event": kind, "data": data, "time": now_iso()}
            log.events.append(event)
            del log.events[:-keep]
            return event

    def read(self, stream: str, after: int = 0) -> list[dict[str, Any]] | None:
        with self._lock:
            log = self._streams.get(stream)
            return None if log is None else [event for event in log.events if event["id"] > after]

    async def follow(self, stream: str, after: int = 0, *, poll: float = 0.1) -> AsyncIterator[dict[str, Any] | None]:
        """Events after ``after``, then live; ``None`` after each idle second. On the event loop: no
        thread is held while waiting."""
        idle = 0.0
        while True:
            fresh = self.read(stream, after) or []
            for event in fresh:
                after = event["id"]
                yield event
            if fresh:
                idle = 0.0
                continue
            await asyncio.sleep(poll)
            idle += poll
            if idle >= IDLE_SECONDS:
                idle = 0.0
                yield None

    def last_id(self, stream: str) -> int:
        with self._lock:
            log = self._streams.get(stream)
            return log.last if log is not None else 0

    def retire(self, stream: str) -> None:
        """A finished job's stream: its events are in the store now."""
        with self._lock:
            self._streams.pop(stream, None)

    def dispatch(self, job_id: str, run: Callable[[str], object]) -> None:
        threading.Thread(target=run, args=(job_id,), name=f"job-{job_id}", daemon=True).start()

    def request_cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancels.add(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._cancels

    def stop_serving(self) -> None:
        pass  # jobs run on their own threads, nothing to stop taking

    def once_per(self, name: str, seconds: float) -> bool:
        """True at most once per ``seconds`` for ``name`` (in this process)."""
        with self._lock:
            if self._once.get(name, 0.0) > time.monotonic():
                return False
            self._once[name] = time.monotonic() + seconds
            return True

    def close(self) -> None:
        pass


# Appends one event: the stream's counter gives its id, so every process shares one sequence (a counter
# not there yet starts after ARGV[3]); the entry's own id is 0-<n> (XADD takes any id above the last),
# and the stream is trimmed to about ARGV[1] entries. Lua's numbers are doubles: an id past 1e14 (a
# client stream starting from the clock) is formatted with %d, never concatenated as 1.7e+15.
_APPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[3]) end
local n = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '0-' .. string.format('%d', n), 'e', ARGV[2])
return n
"""
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end"
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"
QUEUE_NAME = "spawnit-jobs"
HUB_BLOCK_MS = 500  # how long the hub's XREAD waits; a stream followed meanwhile joins at the next call


class _StreamHub:
    """Reads every stream followed in one process (and event loop) with one blocking XREAD, and hands
    each entry to the queues of that stream's followers."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.followers: dict[str, set[asyncio.Queue]] = {}
        self.cursors: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def subscribe(self, key: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        if key not in self.followers:
            newest = await self.client.xrevrange(key, "+", "-", count=1)
            self.cursors.setdefault(key, newest[0][0] if newest else "0-0")  # another follower may have come meanwhile
        self.followers.setdefault(key, set()).add(queue)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._read())
        return queue

    def unsubscribe(self, key: str, queue: asyncio.Queue) -> None:
        followers = self.followers.get(key)
        if followers is not None:
            followers.discard(queue)
            if not followers:
                del self.followers[key]
                self.cursors.pop(key, None)

    async def _read(self) -> None:
        while True:
            if not self.followers:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                answer = await self.client.xread(dict(self.cursors), count=1000, block=HUB_BLOCK_MS)
            except Exception as error:  # noqa: BLE001 - Redis away for a moment: followers see idle ticks, then resume
                LOG.warning("event streams: %s", error)
                await asyncio.sleep(1)
                continue
            for key, entries in answer or []:
                if key not in self.cursors:
                    continue
                self.cursors[key] = entries[-1][0]
                for queue in self.followers.get(key, ()):
                    for entry in entries:
                        queue.put_nowait(entry)
RUN_JOB = "run_job"
DISPATCH_ATTEMPTS = 4
FOLLOWER_CONNECTIONS = 50  # per event loop: followers opening at once wait for a connection, never fail for want of one


class RedisEngine:
    """Leases, streams, queue and signals in Redis (or Valkey) 7, shared by every replica and worker.

    Keys, under ``prefix``: ``lease:<key>`` (holder, with an expiry), ``seq:<stream>`` and
    ``events:<stream>`` (a stream's counter and its Redis Stream), ``cancel:<job>``, ``once:<name>``;
    the saq queue ``spawnit-jobs``."""

    shared = True

    def __init__(self, url: str, *, prefix: str = "spawnit", retired_ttl: int = 3600) -> None:
        import redis

        self.url, self.prefix, self.retired_ttl = url, prefix, retired_ttl
        self.redis = redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
        self._append = self.redis.register_script(_APPEND)
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(_RELEASE)
        self._hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _StreamHub] = weakref.WeakKeyDictionary()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()
        self._queue: Any = None
        self._worker: Any = None

    def ping(self) -> None:
        """Raise :class:`EngineError` naming the URL (without its password) if Redis cannot be reached."""
        import redis

        try:
            self.redis.ping()
        except redis.RedisError as error:
            raise EngineError(f"SPAWNIT_REDIS_URL: {redact_url(self.url)} cannot be reached: {error}") from None

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}:{kind}:{name}"

    # Leases ---------------------------------------------------------------------------------
    def claim(self, key: str, holder: str, ttl: float) -> str | None:
        lease = self._key("lease", key)
        if self.redis.set(lease, holder, nx=True, px=int(ttl * 1000)):
            return None
        current = self.redis.get(lease)
        if current is None:  # expired between the two calls: try once more
            return None if self.redis.set(lease, holder, nx=True, px=int(ttl * 1000)) else (self.redis.get(lease) or "?")
        return None if current == holder else current

    def renew(self, key: str, holder: str, ttl: float) -> bool:
        return bool(self._renew(keys=[self._key("lease", key)], args=[holder, int(ttl * 1000)]))

    def release(self, key: str, holder: str) -> None:
        self._release(keys=[self._key("lease", key)], args=[holder])

    def holder(self, key: str) -> str | None:
        return self.redis.get(self._key("lease", key))

    # Streams --------------------------------------------------------------------------------
    def append(self, stream: str, kind: str, data: Any, *, keep: int, start_after: int = 0) -> dict[str, Any]:
        stamp = now_iso()
        body = json.dumps({"event": kind, "data": data, "time": stamp})
        number = self._append(keys=[self._key("seq", stream), self._key("events", stream)], args=[keep, body, start_after])
        return {"id": int(number), "event": kind, "data": data, "time": stamp}

    @staticmethod
    def _decode(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
        body = json.loads(fields["e"])
        return {"id": int(entry_id.split("-", 1)[1]), **body}

    def read(self, stream: str, after: int = 0) -> list[dict[str, Any]] | None:
        """Events after ``after`` still in Redis (None if the stream is gone: expired after its job)."""
        key = self._key("events", stream)
        entries = self.redis.xrange(key, f"0-{after + 1}", "+")
        if not entries and not self.redis.exists(key):
            return None
        return [self._decode(entry_id, fields) for entry_id, fields in entries]

    def _hub(self) -> _StreamHub:
        """This event loop's reader of every followed stream (one Redis connection for all followers)."""
        import redis.asyncio as aioredis

        loop = asyncio.get_running_loop()
        hub = self._hubs.get(loop)
        if hub is None:
            # A blocking pool: 300 followers opening at once queue for its connections (a plain pool of 100
            # raised MaxConnectionsError and aborted 177 of them).
            pool = aioredis.BlockingConnectionPool.from_url(self.url, decode_responses=True, max_connections=FOLLOWER_CONNECTIONS, timeout=60)
            hub = self._hubs[loop] = _StreamHub(aioredis.Redis(connection_pool=pool))
        return hub

    async def follow(self, stream: str, after: int = 0) -> AsyncIterator[dict[str, Any] | None]:
        """Events after ``after``, then live; ``None`` after each idle second. The backlog is read
        directly; live events come from this loop's hub, which blocks on one XREAD for every followed
        stream: a thousand idle followers cost one connection and no polling."""
        key = self._key("events", stream)
        hub = self._hub()
        queue = await hub.subscribe(key)
        try:
            backlog = await hub.client.xrange(key, f"0-{after + 1}", "+")
            for entry_id, fields in backlog:
                event = self._decode(entry_id, fields)
                after = event["id"]
                yield event
            while True:
                try:
                    entry_id, fields = await asyncio.wait_for(queue.get(), IDLE_SECONDS)
                except TimeoutError:
                    yield None
                    continue
                event = self._decode(entry_id, fields)
                if event["id"] > after:  # the hub may repeat what the backlog gave
                    after = event["id"]
                    yield event
        finally:
            hub.unsubscribe(key, queue)

    def last_id(self, stream: str) -> int:
        return int(self.redis.get(self._key("seq", stream)) or 0)

    def retire(self, stream: str) -> None:
        """A finished job's stream expires after ``retired_ttl`` (its events are in the store)."""
        with self.redis.pipeline() as pipe:
            pipe.expire(self._key("events", stream), self.retired_ttl).expire(self._key("seq", stream), self.retired_ttl).execute()

    # Queue ----------------------------------------------------------------------------------
    def _engine_loop(self) -> asyncio.AbstractEventLoop:
        """The engine's own event loop (a thread), where the saq queue and worker live."""
        with self._loop_lock:
            if self._loop is None:
                from saq import Queue

                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="spawnit-engine", daemon=True).start()
                self._loop = loop
                self._queue = asyncio.run_coroutine_threadsafe(self._make_queue(Queue), loop).result(timeout=30)
            return self._loop

    async def _make_queue(self, queue_class: Any) -> Any:
        queue = queue_class.from_url(self.url, name=QUEUE_NAME)
        await queue.connect()
        return queue

    def _call(self, coroutine_factory: Callable[[], Any], timeout: float = 30) -> Any:
        loop = self._engine_loop()
        return asyncio.run_coroutine_threadsafe(coroutine_factory(), loop).result(timeout=timeout)

    def dispatch(self, job_id: str, run: Callable[[str], object]) -> None:
        """Queue the job for whichever worker takes it first (``run`` is the workers' business).

        A connection the pool kept from before a Redis restart fails once ("Connection closed by
        server") and is dropped: the enqueue is tried again on a fresh one, a few times over about a
        second, before :class:`EngineError` says the queue cannot be reached."""
        import redis

        for attempt in range(DISPATCH_ATTEMPTS):
            try:
                self._call(lambda: self._queue.enqueue(RUN_JOB, job_id=job_id, key=job_id, timeout=0, retries=1, ttl=86400))
                return
            except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
                if attempt == DISPATCH_ATTEMPTS - 1:
                    raise EngineError(f"SPAWNIT_REDIS_URL: the job queue at {redact_url(self.url)} cannot be reached: {error}") from None
                time.sleep(0.1 * 2**attempt)

    def serve(self, run: Callable[[str], object], *, concurrency: int) -> None:
        """Take jobs from the queue, ``concurrency`` at a time, each run by ``run(job_id)`` on a thread."""
        from saq import Worker

        def run_job(context: dict[str, Any], *, job_id: str) -> None:
            run(job_id)

        async def start() -> Any:
            worker = Worker(self._queue, functions=[(RUN_JOB, run_job)], concurrency=concurrency, timers={"sweep": 30})
            worker.SIGNALS = []  # the process's own handlers stop it
            asyncio.get_running_loop().create_task(worker.start())
            return worker

        self._worker = self._call(start)

    def stop_serving(self) -> None:
        """Take no more jobs; the running ones go on until they end."""
        if self._worker is not None:
            self._worker.event.set()

    # Signals --------------------------------------------------------------------------------
    def request_cancel(self, job_id: str) -> None:
        self.redis.set(self._key("cancel", job_id), "1", ex=86400)

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self.redis.exists(self._key("cancel", job_id)))

    def once_per(self, name: str, seconds: float) -> bool:
        """True for exactly one caller per ``seconds`` across the cluster."""
        return bool(self.redis.set(self._key("once", name), str(time.time()), nx=True, px=int(seconds * 1000)))

    def close(self) -> None:
        self.stop_serving()
        self.redis.close()


def redact_url(url: str) -> str:
    """The URL without its password, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def engine_from_environment(environ: dict[str, str]) -> LocalEngine | RedisEngine:
    """Redis when ``SPAWNIT_REDIS_URL`` is set (checked at once), else this process alone."""
    url = environ.get("SPAWNIT_REDIS_URL", "").strip()
    if not url:
        return LocalEngine()
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise EngineError(f"SPAWNIT_REDIS_URL: {redact_url(url)!r} is not allowed; allowed: a redis://, rediss:// or unix:// URL")
    engine = RedisEngine(url)
    engine.ping()
    return engine
