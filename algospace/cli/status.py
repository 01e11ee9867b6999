"""The exit status every command line shares: input errors print one ``error: …`` line and
exit 2, Ctrl-C exits 130, a closed output pipe ends quietly."""

from __future__ import annotations

import sys
from collections.abc import Callable

from algospace.errors import AlgoSpaceError


def exit_status(command: Callable[[], int | None], *, interrupted: str = "interrupted") -> int:
    """Run ``command`` and turn its outcome into an exit status (``interrupted``: what Ctrl-C
    prints)."""
    try:
        return int(command() or 0)
    except AlgoSpaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # output was piped into a command that stopped reading
        return 0
