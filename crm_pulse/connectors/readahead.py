"""Reading one page ahead: the next page's request is in flight while the caller maps this one.

A vendor cursor makes pages follow each other (each request needs the previous answer), so a
plain ``async for`` spends every page's round trip and then every page's mapping one after the
other. :func:`read_ahead` wraps a page iterator and asks for the next page as soon as the
current one is handed out, so the round trip of page ``n + 1`` overlaps the caller's work on
page ``n``. Still one request in flight per cursor, in the same order, with the same retries
(the wrapped iterator does its own requests): it changes when requests are made, never which.

Errors come out where the page would have: pages before a failing request are all handed out
first. Stopping early (``break``, an error in the caller, cancellation) cancels the request in
flight and closes the wrapped iterator.

:func:`start_reading` goes one step further for reads that do not depend on each other (the
deleted rows beside the scan of the live ones, a count beside the first page): the first
request leaves at once, and the pages are read (ahead) later, when the caller gets to them.
Use it as an async context manager: leaving it cancels what is still in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from types import TracebackType
from typing import Generic, TypeVar, cast

__all__ = ["StartedReading", "read_ahead", "start_reading"]

T = TypeVar("T")

LEAD_TURNS = 5
"""Turns of the event loop the next page's request gets before the caller's page is handed out
(httpx sends a request on a kept-alive connection within three)."""


async def _step(pages: AsyncIterator[T]) -> tuple[bool, T | None]:
    try:
        return True, await pages.__anext__()
    except StopAsyncIteration:
        return False, None


async def read_ahead(pages: AsyncIterator[T]) -> AsyncIterator[T]:
    """The items of ``pages``, with the next one already being fetched while the caller holds
    the current one."""
    task: asyncio.Task[tuple[bool, T | None]] = asyncio.create_task(_step(pages))
    try:
        while True:
            more, page = await task
            if not more:
                return
            task = asyncio.create_task(_step(pages))
            # let the next request leave before the caller starts its (CPU-bound) work: an
            # async HTTP client needs a few turns of the loop to get its request onto the wire
            for _ in range(LEAD_TURNS):
                if task.done():
                    break
                await asyncio.sleep(0)
            yield cast(T, page)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved: an error after an early stop is not logged as lost
        if isinstance(pages, AsyncGenerator):
            await pages.aclose()


class StartedReading(Generic[T]):
    """Pages whose first request is in flight already (made by :func:`start_reading`); each
    further request leaves when the page before it is handed out, as with :func:`read_ahead`
    (so pages nobody takes are never asked for)."""

    def __init__(self, pages: AsyncIterator[T]) -> None:
        self._pages = pages
        self._task: asyncio.Task[tuple[bool, T | None]] | None = asyncio.create_task(_step(pages))

    def __aiter__(self) -> StartedReading[T]:
        return self

    async def __anext__(self) -> T:
        task = self._task
        if task is None:
            raise StopAsyncIteration
        try:
            more, page = await task
        except BaseException:
            self._task = None
            raise
        if not more:
            self._task = None
            raise StopAsyncIteration
        self._task = task = asyncio.create_task(_step(self._pages))
        for _ in range(LEAD_TURNS):  # as in read_ahead: let the request leave first
            if task.done():
                break
            await asyncio.sleep(0)
        return cast(T, page)

    async def aclose(self) -> None:
        """Cancel the request in flight (if any) and close the pages."""
        task, self._task = self._task, None
        if task is not None:
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
            if not task.cancelled():
                task.exception()  # retrieved: an error nobody waited for is not logged
        if isinstance(self._pages, AsyncGenerator):
            await self._pages.aclose()

    async def __aenter__(self) -> StartedReading[T]:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.aclose()


def start_reading(pages: AsyncIterator[T]) -> StartedReading[T]:
    """Ask for the first of ``pages`` now (in a task of the running loop), to be iterated
    later, reading ahead. ``async with start_reading(...) as pages:`` closes them."""
    return StartedReading(pages)
