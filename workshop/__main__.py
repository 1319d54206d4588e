"""``python -m workshop ...``: see ``workshop.cli``."""

import signal
import sys

from workshop.cli import main

if __name__ == "__main__":
    # `python -m workshop logs X | head` ends quietly; not `up`, a server: a client gone must not kill it,
    # nor `doctor`, which starts a local cloud
    if hasattr(signal, "SIGPIPE") and sys.argv[1:2] not in (["up"], ["doctor"]):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
