"""A hang becomes a failure with a traceback, never a stuck run.

Each phase of a test (setup, call, teardown — so session fixtures closing at the end too) gets
TEST_HANG_SECONDS (300 by default; the slowest browser and fault tests take ~80 s under load).
When a phase passes it, every asyncio task of the session loop is printed with its stack (what
each one awaits), and the coroutine the loop is driving (the test or the fixture step) is
cancelled: the test fails with that traceback and the run goes on. If the phase still has not
ended TEST_HANG_GRACE_SECONDS later (a sync wait, a cancellation swallowed somewhere), every
thread's stack is printed and the process exits with status 70.

pyproject's ``faulthandler_timeout`` dumps the threads of a test that is slow as a whole, too.
"""

from __future__ import annotations

import asyncio
import faulthandler
import functools
import io
import os
import signal
import sys
import threading
from collections.abc import Iterator

import pytest

LIMIT = float(os.environ.get("TEST_HANG_SECONDS", "300"))
GRACE = float(os.environ.get("TEST_HANG_GRACE_SECONDS", "60"))
EXIT_STATUS = 70


def _main_task() -> asyncio.Task | None:
    """The task ``asyncio.Runner.run`` drives (pytest-asyncio's session runner), found through the
    SIGINT handler it installs for the duration of each run."""
    handler = signal.getsignal(signal.SIGINT)
    if isinstance(handler, functools.partial):
        task = handler.keywords.get("main_task")
        if isinstance(task, asyncio.Task) and not task.done():
            return task
    return None


def describe_tasks(loop: asyncio.AbstractEventLoop) -> str:
    out = io.StringIO()
    tasks = asyncio.all_tasks(loop)
    out.write(f"{len(tasks)} asyncio tasks:\n")
    for task in sorted(tasks, key=lambda t: t.get_name()):
        out.write(f"\n--- {task!r}\n")
        task.print_stack(file=out)
        coro = task.get_coro()  # the await chain, innermost last
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
            if frame is not None:
                out.write(f"    awaits in {frame.f_code.co_name} ({frame.f_code.co_filename}:{frame.f_lineno})\n")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
    return out.getvalue()


def _stuck(nodeid: str, when: str) -> None:
    """On the loop's thread: print the tasks, cancel the driven one."""
    task = _main_task()
    loop = task.get_loop() if task is not None else None
    print(f"\n\n!!! {nodeid} ({when}) still running after {LIMIT:.0f} s: cancelling it", file=sys.stderr)
    if loop is not None:
        print(describe_tasks(loop), file=sys.stderr, flush=True)
        assert task is not None
        task.cancel(f"hang guard: {when} of {nodeid} took over {LIMIT:.0f} s")


def _watch(config: pytest.Config, nodeid: str, when: str, finished: threading.Event) -> None:
    if finished.wait(LIMIT):
        return
    task = _main_task()
    if task is not None:
        task.get_loop().call_soon_threadsafe(_stuck, nodeid, when)
    else:
        print(f"\n\n!!! {nodeid} ({when}) still running after {LIMIT:.0f} s (no event loop)", file=sys.stderr)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    if finished.wait(GRACE):
        return
    # Out of pytest's capture (lost on exit), with what it had captured so far (the task dump).
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture(in_=False)
        out, err = capture.read_global_capture()
        sys.stderr.write(out + err)
    print(f"\n\n!!! {nodeid} ({when}) did not end {GRACE:.0f} s after it was cancelled: exiting", file=sys.stderr)
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.flush()
    os._exit(EXIT_STATUS)


def _guarded(item: pytest.Item, when: str) -> Iterator[None]:
    finished = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(item.config, item.nodeid, when, finished), name="hang-guard", daemon=True
    )
    watcher.start()
    try:
        yield
    finally:
        finished.set()
        watcher.join()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    return (yield from _guarded(item, "setup"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    return (yield from _guarded(item, "call"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    return (yield from _guarded(item, "teardown"))
