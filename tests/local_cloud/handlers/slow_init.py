"""A module with a slow import (a heavy SDK, a model...): a long Init Duration."""

import time

INIT_SECONDS = 0.5
time.sleep(INIT_SECONDS)


def handler(event, context):
    return {"init_seconds": INIT_SECONDS}
