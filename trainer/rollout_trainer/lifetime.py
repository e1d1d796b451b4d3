"""How long a trainer or policy-server process lives when another program started it.

With ``--exit-with-stdin``, the process ends as soon as its standard input reaches end of file:
the program that started it holds the other end of a pipe, and when that program ends — however
it ends, ``kill -9`` included — the pipe closes and this process follows instead of running on as
an orphan. (Reading a terminal, Ctrl-D would end it too, which is why it is a flag.)
"""

import os
import sys
import threading


def exit_with_stdin() -> None:
    """Starts a daemon thread that ends the process when stdin reaches end of file."""

    def watch() -> None:
        # The file descriptor, not sys.stdin.buffer: a daemon thread blocked inside the buffered
        # reader holds its lock, and the interpreter's shutdown then aborts ("could not acquire lock
        # for <stdin> at interpreter shutdown") instead of exiting with the process's own status.
        try:
            while os.read(sys.stdin.fileno(), 4096):
                pass
        except (OSError, ValueError):
            pass
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-stdin", daemon=True).start()
