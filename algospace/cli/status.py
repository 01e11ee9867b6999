"""The exit status every command line shares: input errors print one ``error: …`` line and
exit 2, Ctrl-C exits 130, a closed output pipe ends quietly.

An operational failure (:class:`~algospace.errors.OperationalError`: Ray, the network, the
disk) prints its ``error:`` line too, and writes the full traceback to
``<log_dir>/<timestamp>-<pid>.log``, the file named in that line (``log_dir`` where the
error gives none: ``$TMPDIR/algospace-errors``). Any other exception is a bug and shows its
traceback.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from algospace.errors import AlgoSpaceError, OperationalError
from algospace.files import write_text


def exit_status(command: Callable[[], int | None], *, interrupted: str = "interrupted") -> int:
    """Run ``command`` and turn its outcome into an exit status (``interrupted``: what Ctrl-C
    prints)."""
    try:
        return int(command() or 0)
    except OperationalError as err:
        print(f"error: {err} ({log_traceback(err)})", file=sys.stderr)
        return 2
    except AlgoSpaceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # output was piped into a command that stopped reading
        return 0


def log_traceback(err: OperationalError) -> str:
    """Write ``err``'s traceback (its causes too) to a log file; says where, or why not."""
    folder = err.log_dir or Path(tempfile.gettempdir()) / "algospace-errors"
    path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    text = "".join(traceback.format_exception(err))
    try:
        write_text(path, text)
    except OSError as failed:
        return f"the traceback could not be written to {path}: {failed.strerror or failed}"
    return f"traceback: {path}"
