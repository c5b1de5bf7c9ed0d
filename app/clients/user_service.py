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

import grpc

from app.clients.base import CachedClient

from support_stubs.user.v1 import user_pb2, user_pb2_grpc

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 2.0
CACHE_TTL_SECONDS = 300.0  # 5 min for a known address
NEGATIVE_TTL_SECONDS = 30.0  # shorter for "no address" and failures
CACHE_SIZE = 10_000
_MISS_CODES = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


class UserDirectory(CachedClient[user_pb2_grpc.UserServiceStub, str, "str | None"]):
    """Looks up users' e-mail addresses in the User Service, with a deadline and a cache."""

    default_timeout = TIMEOUT_SECONDS
    default_ttl = CACHE_TTL_SECONDS
    default_negative_ttl = NEGATIVE_TTL_SECONDS
    default_cache_size = CACHE_SIZE

    def _new_stub(self, channel: grpc.aio.Channel) -> user_pb2_grpc.UserServiceStub:
        return user_pb2_grpc.UserServiceStub(channel)

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
        self._remember(key, email, email is not None)
        return email
