"""Client for the User Service (``GRPC_USER_SERVICE_URL``): e-mail addresses by user id.

The User Service belongs to another team and publishes no contract; this client speaks the
ASSUMED minimal one in ``protos/user/v1/user.proto`` (README "Notifications"):
``user.v1.UserService/GetUser(GetUserRequest{id}) -> User{id, email, name, role}``, NOT_FOUND
for an unknown id.

:class:`UserDirectory` gives each call a deadline (:data:`TIMEOUT_SECONDS`) and keeps answers in a
bounded in-process TTL cache (:class:`app.cache.TtlCache`): an address for :data:`CACHE_TTL_SECONDS`, a miss (unknown user,
no address, service unavailable or too slow) for :data:`NEGATIVE_TTL_SECONDS`, so an outage
costs at most one slow call per user per half minute. Failures are logged and answer ``None``:
a notification without an address is skipped, never an error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import grpc

from app.cache import TtlCache

from support_stubs.user.v1 import user_pb2, user_pb2_grpc

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 2.0
CACHE_TTL_SECONDS = 300.0  # 5 min for a known address
NEGATIVE_TTL_SECONDS = 30.0  # shorter for "no address" and failures
CACHE_SIZE = 10_000
_MISS_CODES = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


class UserDirectory:
    """Looks up users' e-mail addresses in the User Service, with a deadline and a cache."""

    def __init__(
        self,
        target: str,
        *,
        timeout: float = TIMEOUT_SECONDS,
        ttl: float = CACHE_TTL_SECONDS,
        negative_ttl: float = NEGATIVE_TTL_SECONDS,
        max_size: int = CACHE_SIZE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._cache: TtlCache[str, str | None] = TtlCache(max_size, monotonic=monotonic)
        self._channel: grpc.aio.Channel | None = None
        self._stub: user_pb2_grpc.UserServiceStub | None = None

    def _service(self) -> user_pb2_grpc.UserServiceStub:
        if self._stub is None:  # created lazily: inside the event loop that uses it
            self._channel = grpc.aio.insecure_channel(self.target)
            self._stub = user_pb2_grpc.UserServiceStub(self._channel)
        return self._stub

    async def email_of(self, user_id: object) -> str | None:
        """The user's e-mail address, or None when unknown, empty or the service failed."""
        if user_id is None:
            return None
        key = str(user_id)
        hit, email = self._cache.get(key)
        if hit:
            return email
        try:
            user = await self._service().GetUser(user_pb2.GetUserRequest(id=key), timeout=self.timeout)
            email = user.email or None
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in _MISS_CODES:
                log.warning("user service lookup failed", extra={"user_id": key, "code": exc.code().name})
            else:
                log.info("user service has no address", extra={"user_id": key, "code": exc.code().name})
            email = None
        except TimeoutError:
            log.warning("user service lookup timed out", extra={"user_id": key})
            email = None
        self._cache.put(key, email, self.ttl if email else self.negative_ttl)
        return email

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._stub = None
