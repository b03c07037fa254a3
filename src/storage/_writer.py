"""Writers: one synchronous HTTP write of a batch of points, with typed errors.

A writer never sleeps and never retries by itself: it reports what happened and the caller (the
sink) decides — spool and come back later on :class:`RetryableWriteError`, dead-letter on
:class:`RejectedPointsError`.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, runtime_checkable

import requests
import urllib3
from influxdb_client import InfluxDBClient, Point
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from gridwatch.storage._config import InfluxSettings
from gridwatch.storage._points import PRECISION, StoredObject, to_records

__all__ = [
    "InfluxAuthError",
    "ParallelWriter",
    "PointWriter",
    "RejectedPointsError",
    "RetryableWriteError",
    "V1Writer",
    "V2Writer",
    "WriteError",
    "build_writer",
    "check_credentials",
    "influx_session",
    "to_line_protocol",
    "to_points",
]

log = logging.getLogger("gridwatch.storage")

#: HTTP statuses that mean "these points are wrong": retrying the same bytes cannot help.
_REJECTING = frozenset({400, 413, 422})
#: HTTP statuses that mean "these credentials may not write here": a configuration error.
_REFUSING = frozenset({401, 403})
#: How long a sink waits before trying refused credentials again (an operator has to act; a
#: retry every few hundred milliseconds would only fill the server's log).
AUTH_RETRY_S = 60.0


def to_points(obj: StoredObject) -> list[Point]:
    """The ``influxdb_client.Point`` objects that store ``obj`` (the same points as
    :func:`~gridwatch.storage.to_lines`, for callers that use the client's own API).

    Raises :class:`~gridwatch.storage.UnsupportedObjectError` naming the type for anything else.
    """
    points = []
    for record in to_records(obj):
        point = Point(record.measurement)
        for key, value in record.tags.items():
            point.tag(key, value)
        for fkey, fvalue in record.fields.items():
            point.field(fkey, fvalue)
        points.append(point.time(record.ts, PRECISION))
    return points


def to_line_protocol(points: Iterable[Point | str]) -> list[str]:
    """Line protocol (nanosecond timestamps) of ``points``; strings pass through unchanged."""
    lines = []
    for point in points:
        line = point if isinstance(point, str) else point.to_line_protocol(PRECISION)
        if line:
            lines.append(line)
    return lines


class WriteError(Exception):
    """A batch was not (fully) written."""


class RetryableWriteError(WriteError):
    """The server is unreachable, overloaded or failing: write the same points again later,
    not before ``retry_after`` seconds when the server said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InfluxAuthError(RetryableWriteError):
    """InfluxDB refused the credentials (HTTP 401) or their right to write there (HTTP 403).

    A configuration error, not an outage: the command line stops with one line and exit code
    2 when it sees it at start; a running sink keeps the points in its spool and tries again
    only after ``AUTH_RETRY_S``."""

    def __init__(self, message: str, retry_after: float | None = AUTH_RETRY_S) -> None:
        super().__init__(message, retry_after)


class RejectedPointsError(WriteError):
    """The server refused points of the batch (HTTP 400: bad line, field type conflict, ...).

    ``message`` is the server's own words. InfluxDB stores the valid points of a rejected batch
    (a "partial write"), so rewriting the good ones is harmless: points are idempotent.
    """

    def __init__(self, message: str, points: Sequence[Point | str]) -> None:
        super().__init__(message)
        self.message = message
        self.points = list(points)


@runtime_checkable
class PointWriter(Protocol):
    """Writes one batch synchronously; raises :class:`RetryableWriteError` or
    :class:`RejectedPointsError`."""

    def write(self, points: Sequence[Point | str]) -> None: ...

    def close(self) -> None: ...


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from datetime import UTC, datetime

        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _server_message(body: bytes | str | None, fallback: str) -> str:
    if not body:
        return fallback
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        doc = json.loads(text)
    except ValueError:
        return text.strip() or fallback
    if isinstance(doc, dict):
        return str(doc.get("error") or doc.get("message") or text).strip()
    return text.strip()


def _classify(status: int, message: str, retry_after: str | None,
              points: Sequence[Point | str], url: str = "InfluxDB") -> WriteError:
    if status in _REJECTING:
        return RejectedPointsError(message, points)
    if status in _REFUSING:
        log.error("InfluxDB at %s refused the credentials (HTTP %s: %s): check influx.username, "
                  "influx.password or influx.token; points are kept in the spool and the next "
                  "attempt is in %.0fs", mask_credentials(url), status, message, AUTH_RETRY_S)
        return InfluxAuthError(f"InfluxDB at {mask_credentials(url)} refused the credentials "
                               f"(HTTP {status}: {message})")
    if status == 404:
        # The database or bucket is missing: no point is bad, keep them for later.
        log.error("InfluxDB refused the write (HTTP %s: %s): check influx settings; points are "
                  "kept in the spool meanwhile", status, message)
    return RetryableWriteError(f"HTTP {status}: {message}", parse_retry_after(retry_after))


class V2Writer:
    """influxdb-client's synchronous write API (``/api/v2/write``: InfluxDB 2.x, 3.x, 1.8+,
    VictoriaMetrics) with org, bucket and token; gzip when ``settings.compress``."""

    def __init__(self, settings: InfluxSettings) -> None:
        token = settings.token.get_secret_value() if settings.token is not None else ""
        if not token and settings.username:
            # InfluxDB 1.8's v2 compatibility API takes "user:password" as the token.
            pw = settings.password.get_secret_value() if settings.password is not None else ""
            token = f"{settings.username}:{pw}"
        self._bucket = settings.bucket
        self._org = settings.org
        self._client = InfluxDBClient(
            url=settings.url, token=token, org=settings.org, timeout=settings.timeout_ms,
            enable_gzip=settings.compress, retries=False,
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, points: Sequence[Point | str]) -> None:
        lines = to_line_protocol(points)
        if not lines:
            return
        try:
            self._api.write(self._bucket, self._org, "\n".join(lines), write_precision=PRECISION)
        except ApiException as exc:
            status = int(exc.status or 0)
            message = _server_message(exc.body, str(exc.reason))
            headers: Any = exc.headers or {}
            raise _classify(status, message, headers.get("Retry-After"), points,
                            self._client.url) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RetryableWriteError(
                f"cannot reach {mask_credentials(self._client.url)}: "
                f"{mask_credentials(str(exc))}") from None

    def close(self) -> None:
        self._client.close()


def influx_session(settings: InfluxSettings) -> requests.Session:
    """An HTTP session for InfluxDB's v1 endpoints with the configured credentials: basic auth
    with user and password (1.x), or a ``Token`` header (2.x's and 3.x's v1 compatibility)."""
    session = requests.Session()
    if settings.username:
        pw = settings.password.get_secret_value() if settings.password is not None else ""
        session.auth = (settings.username, pw)
    elif settings.token is not None:
        session.headers["Authorization"] = f"Token {settings.token.get_secret_value()}"
    return session


class V1Writer:
    """The InfluxDB 1.x ``/write`` API with database, retention policy and username/password."""

    def __init__(self, settings: InfluxSettings) -> None:
        self._url = f"{settings.url}/write"
        self._params: dict[str, str] = {"db": settings.database, "precision": "ns"}
        if settings.retention_policy:
            self._params["rp"] = settings.retention_policy
        self._timeout = settings.timeout_ms / 1000
        self._gzip = settings.compress
        self._session = influx_session(settings)

    def write(self, points: Sequence[Point | str]) -> None:
        lines = to_line_protocol(points)
        if not lines:
            return
        body = ("\n".join(lines) + "\n").encode("utf-8")
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._gzip:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        try:
            resp = self._session.post(self._url, params=self._params, data=body,
                                      headers=headers, timeout=self._timeout)
        except requests.RequestException as exc:
            raise RetryableWriteError(f"cannot reach {mask_credentials(self._url)}: "
                                      f"{mask_credentials(str(exc))}") from None
        if resp.status_code // 100 == 2:
            return
        message = _server_message(resp.content, resp.reason or "")
        raise _classify(resp.status_code, message, resp.headers.get("Retry-After"), points,
                        self._url)

    def close(self) -> None:
        self._session.close()


class ParallelWriter:
    """One batch written as up to ``len(writers)`` requests at once, each through a writer of
    its own (an HTTP connection is not shared between threads).

    InfluxDB 1.x handles a write request on one core; two requests in flight let it use two
    (``benchmarks/storage.py --parallel 2``). The batch is cut into parts of at least
    ``min_part`` points; the first part is written in the caller's thread, the others in
    helper threads, and ``write`` returns when every part is answered. The outcome is that of
    the whole batch, as one writer would report it, so the sink's handling is unchanged:

    * every part written: done;
    * any part failed to reach the server: :class:`RetryableWriteError` (the longest
      ``retry_after`` asked for), and the sink writes the whole batch again later (parts
      already stored are overwritten: points are idempotent);
    * otherwise any part rejected: :class:`RejectedPointsError` for the whole batch, the first
      part's message; the sink isolates the bad points by halving, as for one request.
    """

    def __init__(self, writers: Sequence[PointWriter], *, min_part: int = 500) -> None:
        if not writers:
            raise ValueError("ParallelWriter needs at least one writer")
        self._writers = list(writers)
        self._min_part = max(1, min_part)
        self._pool = (ThreadPoolExecutor(max_workers=len(writers) - 1,
                                         thread_name_prefix="gridwatch-influx-write")
                      if len(writers) > 1 else None)

    @classmethod
    def of(cls, settings: InfluxSettings,
           factory: Callable[[InfluxSettings], PointWriter]) -> PointWriter:
        """The writer of ``settings.write_requests`` requests in flight (a plain writer of
        ``factory`` for one)."""
        if settings.write_requests <= 1:
            return factory(settings)
        return cls([factory(settings) for _ in range(settings.write_requests)])

    def write(self, points: Sequence[Point | str]) -> None:
        n = min(len(self._writers), len(points) // self._min_part)
        if n <= 1 or self._pool is None:
            self._writers[0].write(points)
            return
        total = len(points)
        parts = [points[total * i // n:total * (i + 1) // n] for i in range(n)]
        futures: list[Future[None]] = [self._pool.submit(w.write, part) for w, part
                                       in zip(self._writers[1:n], parts[1:], strict=True)]
        errors: list[BaseException] = []
        try:
            self._writers[0].write(parts[0])
        except BaseException as exc:  # (the other parts are waited for first)
            errors.append(exc)
        for future in futures:
            failed = future.exception()
            if failed is not None:
                errors.append(failed)
        if not errors:
            return
        unexpected = [e for e in errors if not isinstance(e, WriteError)]
        if unexpected:
            raise unexpected[0]
        retryable = [e for e in errors if isinstance(e, RetryableWriteError)]
        if retryable:
            waits = [e.retry_after for e in retryable if e.retry_after is not None]
            first = retryable[0]
            if waits and first.retry_after != max(waits):
                raise type(first)(str(first), max(waits)) from first
            raise first
        first_rejected = errors[0]
        message = getattr(first_rejected, "message", str(first_rejected))
        raise RejectedPointsError(message, points) from first_rejected

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for writer in self._writers:
            writer.close()


def build_writer(settings: InfluxSettings) -> PointWriter:
    """The writer ``settings.api`` selects: :class:`V1Writer` or :class:`V2Writer`."""
    if settings.api == "v1":
        return V1Writer(settings)
    if settings.api == "v2":
        return V2Writer(settings)
    raise ValueError(f"influx.api {settings.api!r} is not one of v1, v2")


def check_credentials(settings: InfluxSettings) -> None:
    """Raise :class:`InfluxAuthError` when InfluxDB refuses the configured credentials: an
    empty write, which stores nothing but is authenticated. A server that cannot be reached
    passes (an outage is what the spool is for)."""
    if settings.api == "v1":
        session = influx_session(settings)
        url = f"{settings.url.rstrip('/')}/write"
        params = {"db": settings.database, "precision": "ns"}
    else:
        session = requests.Session()
        token = settings.token.get_secret_value() if settings.token is not None else ""
        if not token and settings.username:
            pw = settings.password.get_secret_value() if settings.password is not None else ""
            token = f"{settings.username}:{pw}"
        if token:
            session.headers["Authorization"] = f"Token {token}"
        url = f"{settings.url.rstrip('/')}/api/v2/write"
        params = {"org": settings.org, "bucket": settings.bucket, "precision": "ns"}
    try:
        resp = session.post(url, params=params, data=b"", timeout=settings.timeout_ms / 1000)
    except requests.RequestException:
        return
    finally:
        session.close()
    if resp.status_code in _REFUSING:
        message = _server_message(resp.content, resp.reason or "")
        raise InfluxAuthError(f"InfluxDB at {mask_credentials(settings.url)} refused the "
                              f"credentials (HTTP {resp.status_code}: {message})")


def mask_credentials(text: str) -> str:
    """``text`` with the user information of URLs (``scheme://user:password@``) and secret
    query parameters replaced by ``***``."""
    from gridwatch._settings import mask_credentials as mask

    return mask(text)


def describe(settings: InfluxSettings) -> dict[str, Any]:
    """Where points go, for log lines (no secrets)."""
    target = (f"db={settings.database} rp={settings.retention_policy or '(default)'}"
              if settings.api == "v1" else f"org={settings.org} bucket={settings.bucket}")
    return {"api": settings.api, "url": mask_credentials(settings.url), "target": target}
