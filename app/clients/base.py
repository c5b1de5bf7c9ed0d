"""What the outbound gRPC clients share: a channel opened lazily (inside the event loop that uses
it), a deadline per call, and a bounded TTL cache of the answers (:class:`app.cache.TtlCache`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import ClassVar, Generic, TypeVar

import grpc

from app.cache import TtlCache

StubT = TypeVar("StubT")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class CachedClient(Generic[StubT, K, V]):
    """A client of another team's gRPC service. Subclasses name the stub and their defaults;
    answers are cached for ``ttl``, misses and failures for the shorter ``negative_ttl``."""

    default_timeout: ClassVar[float]
    default_ttl: ClassVar[float]
    default_negative_ttl: ClassVar[float]
    default_cache_size: ClassVar[int]

    def __init__(
        self,
        target: str,
        *,
        timeout: float | None = None,
        ttl: float | None = None,
        negative_ttl: float | None = None,
        max_size: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.timeout = self.default_timeout if timeout is None else timeout
        self.ttl = self.default_ttl if ttl is None else ttl
        self.negative_ttl = self.default_negative_ttl if negative_ttl is None else negative_ttl
        self._cache: TtlCache[K, V] = TtlCache(
            self.default_cache_size if max_size is None else max_size, monotonic=monotonic
        )
        self._channel: grpc.aio.Channel | None = None
        self._stub: StubT | None = None

    def _new_stub(self, channel: grpc.aio.Channel) -> StubT:
        raise NotImplementedError

    def _service(self) -> StubT:
        if self._stub is None:  # created lazily: inside the event loop that uses it
            self._channel = grpc.aio.insecure_channel(self.target)
            self._stub = self._new_stub(self._channel)
        return self._stub

    def _remember(self, key: K, value: V, found: bool) -> None:
        """Cache an answer: ``found`` for ``ttl``, else (a miss or a failure) for ``negative_ttl``."""
        self._cache.put(key, value, self.ttl if found else self.negative_ttl)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._stub = None
