"""app/follower.py on its own: a NOTIFY wakes every listener at once and again shortly after (a
notified row can be unreadable for a moment: readers see only rows below every running
transaction), sooner than a listener's safety-net read."""

from __future__ import annotations

from app import follower
from app.follower import EventFollower, Wake


class FakeLeader:
    def __init__(self) -> None:
        self.callbacks: list = []

    def on_notify(self, callback) -> None:
        self.callbacks.append(callback)


class Listener:
    name = "probe"
    leader = False

    def __init__(self) -> None:
        self.wake = Wake()
        self.payloads: list[str] = []

    def notified(self, payload: str) -> None:
        self.payloads.append(payload)

    async def follow(self) -> None:  # not started here
        raise AssertionError


async def test_a_notification_wakes_at_once_and_again_after_the_echo_delays(monkeypatch) -> None:
    monkeypatch.setattr(follower, "ECHO_SECONDS", (0.2, 0.6))
    leader, listener = FakeLeader(), Listener()
    following = EventFollower(leader, [listener])  # type: ignore[arg-type]
    (notify,) = leader.callbacks
    notify("41")
    notify("42")  # a later notification's echoes replace the earlier ones
    assert listener.payloads == ["41", "42"]
    assert await listener.wake.wait(0.01)  # at once
    assert not await listener.wake.wait(0.05)
    assert await listener.wake.wait(0.5)  # the first echo
    assert await listener.wake.wait(0.8)  # the second
    assert not await listener.wake.wait(0.7)  # and no more
    notify("43")
    await following.aclose()  # cancels the pending echoes
    assert await listener.wake.wait(0.01)
    assert not await listener.wake.wait(0.7)
