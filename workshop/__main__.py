"""``python -m workshop ...``: see ``workshop.cli``."""

import signal
import sys

from workshop.cli import main

if __name__ == "__main__":
    if hasattr(signal, "SIGPIPE"):  # `python -m workshop logs X | head` ends quietly
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
