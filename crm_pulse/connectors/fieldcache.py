"""The refresh policy of a connector's cache of CRM field names -> ids, one entry per scope.

A scope is what the CRM lists fields for: a Pipedrive entity, a Zoho module, a monday board.
An entry is read again once it is ``max_age`` seconds old (a field created or renamed in the
CRM is picked up by a running process), and :meth:`FieldCache.resolve` reads it again at once
for a name it does not know, at most every ``refresh_after`` seconds per scope: ``crm-pulse
provision`` runs in another process, and the fields it creates must not make this one's
writes fail as "no such field" until a restart.

A connector subclasses ``FieldCache[ItsClient]`` with :meth:`~FieldCache.read` (fetch and store
one scope's definitions) and :meth:`~FieldCache.find` (a name -> its id in what was stored); its
constructor takes ``client, **policy: Unpack[RefreshPolicy]`` and passes them on.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Generic, TypedDict, TypeVar

__all__ = ["FieldCache", "RefreshPolicy"]

ClientT = TypeVar("ClientT")


class RefreshPolicy(TypedDict, total=False):
    """The keyword arguments of :class:`FieldCache` (for a subclass's ``**policy``)."""

    max_age: float
    refresh_after: float
    clock: Callable[[], float]


class FieldCache(ABC, Generic[ClientT]):
    """Per scope: when its field definitions were last read, and when to read them again."""

    def __init__(
        self,
        client: ClientT,
        *,
        max_age: float = 600.0,
        refresh_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.max_age = max_age
        self.refresh_after = refresh_after
        self.clock = clock
        self.loaded_at: dict[str, float] = {}
        """scope -> the clock when its definitions were last read."""

    @abstractmethod
    async def read(self, scope: str, *, retry: bool) -> None:
        """Fetch ``scope``'s field definitions from the CRM and store them."""

    @abstractmethod
    def find(self, scope: str, name: str) -> str | None:
        """The id of the field ``name`` in what was last read for ``scope``, or None."""

    def _age(self, scope: str) -> float:
        return self.clock() - self.loaded_at.get(scope, float("-inf"))

    async def load(self, scope: str, *, refresh: bool = False, retry: bool = True) -> None:
        """Read ``scope`` unless it was read less than ``max_age`` seconds ago (always with
        ``refresh``)."""
        if self._age(scope) < self.max_age and not refresh:
            return
        await self.read(scope, retry=retry)
        self.loaded_at[scope] = self.clock()

    async def reread(self, scope: str, *, retry: bool = True) -> None:
        """Read ``scope`` again unless that was done less than ``refresh_after`` seconds ago."""
        if self._age(scope) >= self.refresh_after:
            await self.load(scope, refresh=True, retry=retry)

    async def resolve(self, scope: str, name: str, *, retry: bool = True) -> str | None:
        """The id of ``name``, reading ``scope`` again if it is unknown and was last read
        ``refresh_after`` seconds ago or more."""
        await self.load(scope, retry=retry)
        found = self.find(scope, name)
        if found is None:
            await self.reread(scope, retry=retry)
            found = self.find(scope, name)
        return found
