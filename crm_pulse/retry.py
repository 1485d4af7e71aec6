"""One retry policy for every loop that tries again after a failure.

Vendor clients (HubSpot, Salesforce, Pipedrive, and plugins), the write-back outbox, the webhook
inbox and the pollers all wait the same way:

* exponential backoff with **full jitter**: after the n-th failure wait a random time in
  ``[0, min(maximum, initial * 2**(n-1))]``, so that many callers failing together do not come
  back together (AWS Architecture Blog, "Exponential Backoff And Jitter");
* the **vendor's word wins**: when the failure carries a wait (``RateLimited.retry_after``, read
  from ``Retry-After`` or a vendor reset header by :func:`wait_from_headers`), that is the
  wait -- unless it is longer than ``max_wait``, in which case the caller gets the error at once
  (a write-back outbox can schedule it; a thread should not sleep for an hour);
* **caps**: ``maximum`` bounds one backoff delay, ``attempts`` the number of failures.

:class:`Backoff` computes delays for loops that schedule their own retries (the outbox stores a
``retry_at``); :func:`retrying` runs an async call with the policy for the rest::

    backoff = Backoff(initial=1.0, maximum=30.0, attempts=4, max_wait=30.0)
    data = await retrying("GET /deals", lambda: client.get("/deals"), backoff)

Which errors are worth a retry is the caller's choice (``retry_on``); by default a
:class:`~crm_pulse.errors.RetriableError` (which includes ``RateLimited``) is, anything else is
raised at once.

Not being refused in the first place is the other half: :class:`RollingWindow` keeps a client
under a vendor's "n calls per rolling window" limit, shared by concurrent callers, so a connector
can send several calls at once and still never exceed the limit.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TypeVar

from .errors import CrmPulseError, RateLimited, RetriableError

__all__ = ["Backoff", "Counted", "RollingWindow", "is_retriable", "retrying", "wait_from_headers"]

T = TypeVar("T")

log = logging.getLogger("crm_pulse.retry")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, capped; the vendor's wait when it gave one."""

    initial: float = 1.0
    """Upper bound of the first delay, in seconds."""
    maximum: float = 30.0
    """Upper bound of any backoff delay."""
    attempts: int | None = 4
    """Failures allowed: after this many the caller gives up (None: never)."""
    max_wait: float = math.inf
    """A vendor-given wait longer than this is not waited out: the error goes to the caller."""
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after ``failures`` (>= 1) failures in a row; ``retry_after`` (the
        vendor's wait, if it said one) is taken as it is."""
        if retry_after is not None and retry_after >= 0:
            return retry_after
        cap = min(self.maximum, self.initial * 2.0 ** min(max(0, failures - 1), 64))
        return self.rng.uniform(0, cap)

    def exhausted(self, failures: int) -> bool:
        """True when ``failures`` failures are all the tries allowed."""
        return self.attempts is not None and failures >= self.attempts


class Counted:
    """One call in a :class:`RollingWindow`: when it started, left and was answered."""

    __slots__ = ("answer", "sent", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.sent: float | None = None
        """When the request left (told by :meth:`RollingWindow.sent`; None: not told)."""
        self.answer: float | None = None
        """When its answer came (or it failed), once told."""

    def round_trip(self) -> float | None:
        """Seconds from leaving (or starting) to the answer; None while unanswered."""
        if self.answer is None:
            return None
        return self.answer - (self.sent if self.sent is not None else self.start)


class RollingWindow:
    """At most ``calls`` calls in any ``seconds`` (a vendor's rolling-window limit).

    Every caller awaits :meth:`acquire` before its call; it returns at once while the window has
    room and otherwise sleeps until the oldest call leaves it. Reservation and check happen
    without an ``await`` between them, so concurrent callers on one event loop can never start
    more than ``calls`` per window together. The vendor counts a call when it *arrives*, which
    is after our start and not always in step (a loaded machine, a slow connection): a caller
    that tells :meth:`answered` when the answer came counts its call from then on, which is no
    earlier than the vendor's count; ``margin`` widens the window a little for the others.
    ``calls`` and ``seconds`` may be changed later (a vendor that tells its limit in its
    answers).

    With ``until_answered`` every caller must tell :meth:`answered` (also on failure): until
    it does, its call counts as arriving *now* -- it may still be stalled in a worker thread or
    on the wire, and reach the vendor at any moment. So however long the event loop, a thread
    or the network stalls, no call starts before the vendor's window has room, and a burst of
    stalled calls cannot land in one vendor window.

    Counting from the answer is safe but costs a round trip per window: calls that follow one
    another (each needs the last one's answer) and take ``L`` seconds each get at most
    ``calls`` per ``seconds + L``. ``arrival`` (seconds) lifts that: an answered call counts
    from its answer less ``fastest - arrival``, where ``fastest`` is the quickest round trip
    seen so far (from :meth:`sent`, when told, else from the start). That is its start plus
    ``arrival`` plus whatever its own round trip took beyond the fastest one, never later than
    its answer. It is no earlier than the vendor's count if *either* the call reached the
    vendor within ``arrival`` of leaving (the network's one-way time), *or* the vendor took at
    least ``fastest - arrival`` between counting it and our reading its answer (true of every
    call whenever the fastest round trip's own arrival took at most ``arrival`` and the vendor
    answers no call faster than it answered that one): a call stalled on its way in makes its
    own round trip longer by the stall, and is counted that much later. The credit is worked
    out afresh at each check (a faster round trip only makes it smaller), and a call leaves
    the window only once ``seconds`` have passed since its answer.
    """

    def __init__(
        self,
        calls: int,
        seconds: float,
        *,
        margin: float = 0.0,
        until_answered: bool = False,
        arrival: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.calls = calls
        self.seconds = seconds
        self.margin = margin
        self.until_answered = until_answered
        self.arrival = arrival
        """Seconds within which a call reaches the vendor after it leaves, on the fastest round
        trip (None: answered calls count from their answer). May be set to None later (a
        vendor that refused a call anyway)."""
        self.clock = clock
        self.sleep = sleep
        self.counted: list[Counted] = []
        """The calls that may still be in the vendor's window."""
        self.fastest: float | None = None
        """The quickest round trip of an answered call so far, in seconds."""
        self.waited = 0.0
        """Seconds callers spent waiting for room, in total."""

    def counts_from(self, call: Counted, now: float) -> float:
        """When ``call`` counts in the window: the latest time the vendor may have counted it
        (see the class docstring)."""
        if call.answer is None:
            # a call still waiting for its answer may reach the vendor at any moment: "now"
            return now if self.until_answered else call.start
        if self.arrival is None or self.fastest is None:
            return call.answer
        return call.answer - max(0.0, self.fastest - self.arrival)

    def wait_for(self) -> float:
        """Seconds until one more call may start (0: now)."""
        now = self.clock()
        span = self.seconds + self.margin
        # a call leaves only once a whole span passed since its latest possible count: its
        # answer (its start, unanswered, without ``until_answered``)
        self.counted = [c for c in self.counted if self._latest(c) > now - span]
        if self.calls <= 0 or len(self.counted) < self.calls:
            return 0.0
        times = sorted(t for c in self.counted if (t := self.counts_from(c, now)) > now - span)
        if len(times) < self.calls:
            return 0.0
        return max(0.0, times[len(times) - self.calls] + span - now)

    def _latest(self, call: Counted) -> float:
        if call.answer is not None:
            return call.answer
        return math.inf if self.until_answered else call.start

    async def acquire(self) -> Counted:
        """Wait for room, then count one call started now; returns its entry (for
        :meth:`sent` and :meth:`answered`)."""
        while (wait := self.wait_for()) > 0:
            self.waited += wait
            await self.sleep(wait)
        entry = Counted(self.clock())
        self.counted.append(entry)
        return entry

    def sent(self, entry: Counted) -> None:
        """The call's request leaves now (a worker thread may tell it: one attribute set)."""
        entry.sent = self.clock()

    def answered(self, entry: Counted) -> None:
        """The call's answer came (or it failed): it counts in the window from now (less the
        credit of ``arrival``)."""
        if entry.answer is not None:
            return
        entry.answer = max(entry.start, self.clock())
        trip = entry.round_trip()
        if trip is not None:
            self.fastest = trip if self.fastest is None else min(self.fastest, trip)


def is_retriable(error: CrmPulseError) -> bool:
    """The default ``retry_on``: transient failures and rate limits."""
    return isinstance(error, RetriableError)


async def retrying(
    what: str,
    call: Callable[[], Awaitable[T]],
    backoff: Backoff,
    *,
    retry_on: Callable[[CrmPulseError], bool] = is_retriable,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """Await ``call()`` until it succeeds, waiting between failures as ``backoff`` says.

    ``call`` raises crm-pulse errors (vendor errors translated). An error ``retry_on`` refuses,
    the last allowed failure, or a vendor wait over ``backoff.max_wait`` is raised as it is.
    """
    failures = 0
    while True:
        try:
            return await call()
        except CrmPulseError as error:
            failures += 1
            if backoff.exhausted(failures) or not retry_on(error):
                raise
            told = error.retry_after if isinstance(error, RateLimited) else None
            wait = backoff.delay(failures, told)
            if wait > backoff.max_wait:
                raise
            log.info("retrying %s", what, extra={"what": what, "wait": wait, "reason": str(error)})
        await sleep(wait)


def wait_from_headers(
    headers: Mapping[str, str],
    *,
    reset: str | None = None,
    reset_is: str = "seconds",
    now: Callable[[], float] = time.time,
) -> float | None:
    """The wait an HTTP answer asks for, in seconds, or None if it names none.

    ``Retry-After`` first (delta-seconds or an HTTP date); else the vendor's reset header
    ``reset`` (Pipedrive's ``x-ratelimit-reset``), read as seconds from now
    (``reset_is="seconds"``) or as a Unix time (``"epoch"``). Header names are matched
    case-insensitively; a value that is not a number or date is ignored.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    retry_after = lower.get("retry-after")
    if retry_after is not None:
        text = retry_after.strip()
        try:
            return max(0.0, float(text))
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(text).timestamp() - now())
        except (TypeError, ValueError, IndexError):
            pass
    if reset is not None:
        value = lower.get(reset.lower())
        try:
            seconds = float(value) if value is not None else None
        except ValueError:
            seconds = None
        if seconds is not None and math.isfinite(seconds):
            return max(0.0, seconds - now() if reset_is == "epoch" else seconds)
    return None
