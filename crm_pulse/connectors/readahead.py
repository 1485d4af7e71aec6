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
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar, cast

__all__ = ["read_ahead"]

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
