"""A REST API stage's method throttling: a token bucket per method, from the stage's ``MethodSettings``.

"API Gateway throttles requests to your API using the token bucket algorithm, where a token counts
for a request" and "per-API, per-stage throttling limits are applied at the API method level for a
stage" (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html):
``ThrottlingBurstLimit`` is the bucket's size, ``ThrottlingRateLimit`` the tokens added per second, and
each method (resource and HTTP method) has its own bucket, full at first. ``ResourcePath: "/*"`` with
``HttpMethod: "*"`` sets every method's limits; a setting for one resource (``/~1photos``, ``~1`` for
``/``) and method wins over it. A request that finds its bucket empty gets API Gateway's
``429 {"message": "Too Many Requests"}``. The account-level limits (10,000 requests per second, a
burst of 5,000) are not modelled: a laptop does not reach them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["MethodThrottle", "StageThrottle", "TokenBucket"]


@dataclass(frozen=True)
class MethodThrottle:
    """One ``MethodSettings`` entry's throttling: ``resource_path`` "/*" or a resource, ``http_method`` "*" or a verb."""

    resource_path: str
    http_method: str
    rate: float | None  # ThrottlingRateLimit (requests per second); None: not set here
    burst: int | None  # ThrottlingBurstLimit; None: not set here

    @classmethod
    def from_setting(cls, setting: dict) -> MethodThrottle | None:
        """The throttling of a CloudFormation ``MethodSetting``, or None if it sets none."""
        rate, burst = setting.get("ThrottlingRateLimit"), setting.get("ThrottlingBurstLimit")
        if rate is None and burst is None:
            return None
        path = str(setting.get("ResourcePath") or "/*")
        if path not in ("/", "/*"):  # "/~1photos~1{id}": the separator, then the path with "/" written "~1"
            path = path.removeprefix("/").replace("~1", "/")
        return cls(path, str(setting.get("HttpMethod") or "*").upper(),
                   None if rate is None else float(rate), None if burst is None else int(burst))


class TokenBucket:
    """``burst`` tokens at most, ``rate`` more each second; ``take()`` spends one if there is one."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = max(0.0, rate)
        self.burst = max(0, burst)
        self._clock = clock
        self._tokens = float(self.burst)
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


#: what a method gets when only one of rate and burst is set: API Gateway's account-level defaults
_ACCOUNT_RATE, _ACCOUNT_BURST = 10000.0, 5000


class StageThrottle:
    """The buckets of one stage's methods; ``allow(resource_path, method)`` is False when a request is throttled."""

    def __init__(self, settings: Iterable[MethodThrottle], clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = {(s.resource_path, s.http_method): s for s in settings}
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket | None] = {}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._settings)

    def _limits(self, resource_path: str, method: str) -> tuple[float, int] | None:
        rate = burst = None
        # the most specific setting first; each limit is taken from the first that sets it
        for key in ((resource_path, method), (resource_path, "*"), ("/*", method), ("/*", "*")):
            s = self._settings.get(key)
            if s is not None:
                rate = s.rate if rate is None else rate
                burst = s.burst if burst is None else burst
        if rate is None and burst is None:
            return None
        return (_ACCOUNT_RATE if rate is None else rate), (_ACCOUNT_BURST if burst is None else burst)

    def allow(self, resource_path: str, method: str) -> bool:
        key = (resource_path, method)
        bucket = self._buckets.get(key, False)
        if bucket is False:
            with self._lock:
                if key not in self._buckets:
                    limits = self._limits(resource_path, method)
                    self._buckets[key] = None if limits is None else TokenBucket(*limits, clock=self._clock)
                bucket = self._buckets[key]
        return bucket is None or bucket.take()
