"""A module that fails while Lambda imports it (an INIT error)."""

print("init_boom: about to fail")
raise RuntimeError("cannot initialise: missing configuration")


def handler(event, context):  # never reached
    return event
