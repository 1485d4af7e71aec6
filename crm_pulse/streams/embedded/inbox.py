"""The inbox: webhook requests stored durably before their 2xx, parsed into events afterwards.

:meth:`SQLiteInbox.accept` is what the HTTP server awaits before it answers: concurrent
requests are committed together (group commit), so a burst costs one fsync per batch rather
than one per request, and each caller returns only once its request is on disk.

What is stored is only what parsing needs: the method, the URL without credential query
parameters (Salesforce's ``?token=``), the ``Content-Type`` header and the body. Credentials
and signatures were checked by the receiver's ``verify`` before and are never written
(:func:`stored_form`). A digest of the body and its signature headers is remembered for the
replay window (``seen_requests``): an exact repeat of a stored request -- a sender retrying
after a timeout, or a replay, even after a restart -- is answered as a duplicate and stored
nothing.

:meth:`SQLiteInbox.process` then lets each connector's receiver parse the stored requests
(HubSpot's fetch the full records) and, in one transaction, appends the events to the log and
removes the request. A transient failure (the CRM is unreachable: a
:class:`~crm_pulse.errors.RetriableError`) leaves the request to be tried again later with its
error and attempt count (shown on /status); any other failure moves it to the quarantine
(:mod:`.quarantine`) with its reason, and the inbox goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...connectors.protocols import BadRecord, WebhookReceiver, WebhookRequest
from ...connectors.rejects import collecting
from ...errors import FatalError, RetriableError
from ...metrics.events import Event
from ...retry import Backoff
from . import quarantine
from .database import Database
from .log import RecentEvents, append_events

__all__ = ["SQLiteInbox", "request_digest", "scrub_credentials", "stored_form"]

log = logging.getLogger("crm_pulse.inbox")

_Pending = tuple[str, WebhookRequest, "asyncio.Future[bool]"]

KEPT_HEADERS = frozenset({"content-type"})
"""The only headers stored: parsing needs nothing else (credentials were checked before)."""
_CREDENTIAL_PARAM = re.compile(
    r"(?i)token|secret|passw|key|sig|auth|code|credential|session|access"
)
_SIGNED_HEADER = re.compile(r"(?i)signature|timestamp")
DEFAULT_WINDOW = 600.0
"""Seconds a stored request's digest is remembered (at least twice a signature's tolerance)."""


def _clean_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    kept = [(k, v) for k, v in kept if not _CREDENTIAL_PARAM.search(k)]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def stored_form(request: WebhookRequest) -> tuple[str, dict[str, str]]:
    """The URL and headers of ``request`` as stored: no credential of any kind."""
    headers = {k: v for k, v in request.headers.items() if k.lower() in KEPT_HEADERS}
    return _clean_url(request.url), headers


def request_digest(connector: str, request: WebhookRequest) -> bytes:
    """Identifies an exact repeat: the body and the signature/timestamp headers."""
    h = hashlib.sha256(connector.encode() + b"\0" + request.body)
    for name, value in sorted(request.headers.items(), key=lambda kv: kv[0].lower()):
        if _SIGNED_HEADER.search(name):
            h.update(b"\0" + name.lower().encode() + b"=" + value.encode("utf-8", "replace"))
    return h.digest()


def scrub_credentials(conn: sqlite3.Connection) -> int:
    """Remove credentials a file written by an older version stored with its requests (once).

    Returns how many requests were rewritten; afterwards their old bytes are zeroed in the file
    (``secure_delete``) and the WAL is truncated, so no copy is left on disk."""
    if conn.execute("SELECT 1 FROM meta WHERE name = 'credentials_scrubbed'").fetchone():
        return 0
    changed = 0
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for row_id, method, url, headers_json in conn.execute(
            "SELECT id, method, url, headers FROM inbox"
        ).fetchall():
            try:
                headers = json.loads(headers_json)
                headers = dict(headers) if isinstance(headers, dict) else {}
            except ValueError:
                headers = {}
            url2, headers2 = stored_form(WebhookRequest(str(method), str(url), headers, b"", 0))
            if url2 != url or headers2 != headers:
                conn.execute(
                    "UPDATE inbox SET url = ?, headers = ? WHERE id = ?",
                    (url2, json.dumps(headers2), row_id),
                )
                changed += 1
        conn.execute("INSERT INTO meta (name, value) VALUES ('credentials_scrubbed', '1')")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    if changed:
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        log.warning(
            "credentials stored by an older version were removed from the state file",
            extra={"requests": changed},
        )
    return changed


class SQLiteInbox:
    def __init__(
        self,
        db: Database,
        receivers: Mapping[str, WebhookReceiver],
        *,
        on_stored: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        retry_after: float = 5.0,
        windows: Mapping[str, float] | None = None,
        recent: RecentEvents | None = None,
    ) -> None:
        self.db = db
        self.recent = recent
        self.receivers = dict(receivers)
        self.on_stored = on_stored
        self.clock = clock
        self.backoff = Backoff(initial=retry_after, maximum=retry_after * 2**10, attempts=None)
        """When a stored request that failed to parse is tried again (:mod:`crm_pulse.retry`)."""
        self.windows = dict(windows or {})
        self._pending: list[_Pending] = []
        self._committer: asyncio.Task[None] | None = None
        self.accepted = 0
        self.duplicates = 0
        self.quarantined = 0
        self.parsed_events = 0
        self.last_error = ""
        self._commits = 0

    # ------------------------------------------------------------ before the 2xx
    async def accept(self, connector: str, request: WebhookRequest) -> bool:
        """Return once the request is committed to disk: True, or False for an exact repeat of
        a request already stored within the replay window (nothing is stored again)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((connector, request, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_pending())
        return await future

    async def _commit_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            now_ms = int(self.clock() * 1000)
            self._commits += 1
            prune = self._commits % 100 == 1

            def insert(
                conn: sqlite3.Connection,
                batch: list[_Pending] = batch,
                now_ms: int = now_ms,
                prune: bool = prune,
            ) -> list[bool]:
                if prune:
                    conn.execute("DELETE FROM seen_requests WHERE expires_ms < ?", (now_ms,))
                stored: list[bool] = []
                rows = []
                for name, r, _ in batch:
                    window = self.windows.get(name, DEFAULT_WINDOW)
                    digest = request_digest(name, r)
                    seen = conn.execute(
                        "SELECT expires_ms FROM seen_requests WHERE digest = ?", (digest,)
                    ).fetchone()
                    if seen is not None and seen[0] >= now_ms:
                        stored.append(False)
                        continue
                    conn.execute(
                        "INSERT OR REPLACE INTO seen_requests (digest, expires_ms) VALUES (?, ?)",
                        (digest, now_ms + int(window * 1000)),
                    )
                    url, headers = stored_form(r)
                    rows.append(
                        (name, r.method, url, json.dumps(headers), r.body, r.received_at_ms)
                    )
                    stored.append(True)
                conn.executemany(
                    "INSERT INTO inbox (connector, method, url, headers, body, received_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                return stored

            try:
                outcome = await self.db.run(self.db.transaction(insert))
            except Exception as exc:  # the callers answer 503; nothing was acknowledged
                for _, _, f in batch:
                    if not f.done():
                        f.set_exception(exc)
                continue
            self.accepted += sum(outcome)
            self.duplicates += len(outcome) - sum(outcome)
            for (_, _, f), stored in zip(batch, outcome, strict=True):
                if not f.done():
                    f.set_result(stored)
            if self.on_stored is not None and any(outcome):
                self.on_stored()

    # ------------------------------------------------------------ after the 2xx
    async def process(self, limit: int = 100) -> int:
        """Parse due stored requests into log events; returns how many requests were done."""
        now = self.clock()

        def fetch() -> list[tuple[int, str, WebhookRequest, int]]:
            rows = self.db.conn.execute(
                "SELECT id, connector, method, url, headers, body, received_ms, attempts "
                "FROM inbox WHERE due_ms <= ? ORDER BY id LIMIT ?",
                (int(now * 1000), limit),
            ).fetchall()
            return [
                (
                    int(i),
                    str(c),
                    WebhookRequest(m, u, json.loads(h), bytes(b), int(r)),
                    int(a),
                )
                for i, c, m, u, h, b, r, a in rows
            ]

        done = 0
        for row_id, connector, request, attempts in await self.db.run(fetch):
            receiver = self.receivers.get(connector)
            try:
                if receiver is None:
                    raise LookupError(f"no webhook receiver for connector {connector!r}")
                with collecting() as rejected:
                    events = await receiver.parse(request)
            except (RetriableError, FatalError, OSError, TimeoutError) as exc:
                # the CRM is unreachable or refuses our credentials: waiting (or an operator)
                # fixes that, the request itself is fine
                self.last_error = f"{connector}: {exc}"
                log.warning(
                    "stored webhook could not be parsed yet; will retry",
                    extra={"connector": connector, "inbox_id": row_id, "reason": str(exc)},
                )
                retry_ms = int((now + self.backoff.delay(attempts + 1)) * 1000)

                def failed(
                    conn: sqlite3.Connection,
                    row_id: int = row_id,
                    msg: str = str(exc)[:500],
                    at: int = retry_ms,
                ) -> None:
                    conn.execute(
                        "UPDATE inbox SET attempts = attempts + 1, last_error = ?, "
                        "due_ms = ? WHERE id = ?",
                        (msg, at, row_id),
                    )

                await self.db.run(self.db.transaction(failed))
                continue
            except Exception as exc:  # anything else will not parse by waiting: quarantine
                reason = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
                self.last_error = f"{connector}: quarantined inbox request {row_id}: {reason}"
                log.warning(
                    "stored webhook quarantined",
                    extra={"connector": connector, "inbox_id": row_id, "reason": reason[:500]},
                )

                def to_quarantine(
                    conn: sqlite3.Connection,
                    row_id: int = row_id,
                    connector: str = connector,
                    request: WebhookRequest = request,
                    reason: str = reason,
                ) -> None:
                    quarantine.put(
                        conn,
                        connector,
                        "request",
                        f"inbox {row_id}",
                        reason,
                        payload=request.body,
                        request={
                            "method": request.method,
                            "url": request.url,
                            "headers": dict(request.headers),
                            "received_ms": request.received_at_ms,
                        },
                        now_ms=int(self.clock() * 1000),
                    )
                    conn.execute("DELETE FROM inbox WHERE id = ?", (row_id,))

                await self.db.run(self.db.transaction(to_quarantine))
                self.quarantined += 1
                done += 1
                continue

            def store(
                conn: sqlite3.Connection,
                row_id: int = row_id,
                connector: str = connector,
                events: list[Event] = events,
                rejected: list[BadRecord] = rejected,
            ) -> None:
                now_ms = int(self.clock() * 1000)
                append_events(conn, connector, events, now_ms, self.recent)
                # records the receiver could not map (connectors.rejects.reject)
                quarantine.put_bad_records(
                    conn, connector, rejected, now_ms, position=f"inbox {row_id}"
                )
                conn.execute("DELETE FROM inbox WHERE id = ?", (row_id,))

            await self.db.run(self.db.transaction(store))
            self.parsed_events += len(events)
            self.quarantined += len(rejected)
            done += 1
        return done

    def depth(self, conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0])
