"""The errors the local cloud's parts raise to each other (and to their callers), as types.

A throttle is recognised by ``isinstance(e, Throttled)``, never by a class name; each error carries
the AWS error code its API would answer with, so every part maps it the same way.
"""

from __future__ import annotations

__all__ = ["CloudError", "RequestTooLarge", "Throttled", "UnknownFunction"]


class CloudError(RuntimeError):
    """The local cloud could not start or do what was asked; the message says what to do."""


class Throttled(Exception):
    """Lambda's ``TooManyRequestsException`` (HTTP 429, "Rate Exceeded.").

    ``reason`` is ``ReservedFunctionConcurrentInvocationLimitExceeded`` (the function's reserved
    concurrency is used up) or ``ConcurrentInvocationLimitExceeded`` (the account's).
    """

    code = "TooManyRequestsException"
    status = 429

    def __init__(self, function_name: str, reason: str) -> None:
        super().__init__("Rate Exceeded.")
        self.message = "Rate Exceeded."
        self.function_name = function_name
        self.reason = reason

    def __repr__(self) -> str:
        return f"Throttled({self.function_name!r}, reason={self.reason!r})"


class UnknownFunction(KeyError):
    """Lambda's ``ResourceNotFoundException`` for an unregistered function."""

    code = "ResourceNotFoundException"
    status = 404

    def __init__(self, name: str, arn: str) -> None:
        super().__init__(name)
        self.name = name
        self.message = f"Function not found: {arn}"

    def __str__(self) -> str:
        return self.message


class RequestTooLarge(ValueError):
    """Lambda's ``RequestTooLargeException``: an event over 6 MB."""

    code = "RequestTooLargeException"
    status = 413
