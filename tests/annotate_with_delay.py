"""`python -m critic.cli ...` with a pause in the middle of every rating submission, for fault tests.

    python tests/annotate_with_delay.py SECONDS annotate --db URL --port PORT

Runs the CLI exactly as `python -m critic.cli` would, in a process where every database flush that writes
a `rating` row is followed by a sleep of SECONDS, after a line on stderr ("sleeping SECONDS s
mid-transaction"): the first row of a submission is written and the transaction is still open, so a test
can kill the server then and check that nothing half-written survives. The pause hangs off SQLAlchemy's
`after_flush` session event, so the production code carries no test hook.
"""

from __future__ import annotations

import runpy
import sys
import time

from sqlalchemy import event
from sqlalchemy.orm import Session

from critic.annotation_app.db import Rating


def pause_after_rating_writes(seconds: float) -> None:
    """Sleep `seconds` after every flush, of any session in this process, that writes a rating row."""

    @event.listens_for(Session, "after_flush")
    def pause(session: Session, _context) -> None:
        if any(isinstance(row, Rating) for row in session.new):
            print(f"annotate_with_delay: sleeping {seconds:g} s mid-transaction", file=sys.stderr, flush=True)
            time.sleep(seconds)


def main() -> None:
    seconds, *args = sys.argv[1:]
    pause_after_rating_writes(float(seconds))
    sys.argv = ["critic", *args]
    runpy.run_module("critic.cli", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
