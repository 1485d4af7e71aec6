"""``crm-pulse deadletters list|retry|drop``: the writes that failed for good, by hand.

Dead letters of an outage come back by themselves after the next successful write to the same
connector (:meth:`~.outbox.SQLiteOutbox.requeue_dead`); these commands show them, send chosen
ones again (whatever killed them), or drop them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TextIO

from ..embedded.database import Database
from .outbox import SQLiteOutbox

__all__ = ["run_command"]


def run_command(
    state_path: str, action: str, ids: Sequence[int], *, all_letters: bool, out: TextIO
) -> int:
    """Returns the exit code."""
    db = Database(state_path, create=False)
    try:
        if action == "list":
            letters = db.call(lambda: SQLiteOutbox.dead_letters(db.conn, 1000))
            if not letters:
                out.write("no dead letters\n")
            for d in letters:
                out.write(
                    f"{d['id']:>6}  {d['connector']:<12} {d['object']} {d['record_id']} "
                    f"{d['field']} = {d['value']}  ({d['attempts']} attempts) {str(d['reason'])[:80]}\n"
                )
            total = db.call(lambda: SQLiteOutbox.dead_letter_count(db.conn))
            out.write(f"{total} dead letter(s)\n")
            return 0
        if not ids and not all_letters:
            out.write(f"deadletters {action}: name dead letter ids, or --all\n")
            return 2
        chosen = list(ids) if ids else None
        if action == "drop":
            n = db.call(db.transaction(lambda c: SQLiteOutbox.drop_dead(c, chosen)))
            out.write(f"dropped {n} dead letter(s)\n")
            return 0
        outbox = SQLiteOutbox(db)
        n = db.call(
            db.transaction(
                lambda c: outbox.requeue_in(c, None, time.time(), chosen, 1_000_000, False)
            )
        )
        out.write(f"{n} dead letter(s) put back in the outbox; the runtime sends them\n")
        return 0
    finally:
        db.close()
