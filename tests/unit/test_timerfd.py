"""carpd.linux.timerfd through libc (Python before 3.13 has no os.timerfd_settime)."""

from __future__ import annotations

import ctypes
import time
from typing import Any

import pytest

from carpd.linux import timerfd


def _armed(fd: int) -> bool:
    """timerfd_gettime(2): whether a deadline is set."""
    spec = timerfd._Itimerspec()
    assert timerfd._libc.timerfd_gettime(fd, ctypes.byref(spec)) == 0
    return bool(spec.it_value.tv_sec or spec.it_value.tv_nsec)


def test_disarm_hands_the_kernel_an_itimerspec_that_outlives_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A temporary structure freed before the syscall is the next block of its size
    handed out, and whatever is written there reaches the kernel: EINVAL (the lab's
    import_interop failure: "service checks failed to run", no MASTER), or a timer armed
    at a garbage deadline. Here every call first takes 32-byte blocks and fills them."""
    monkeypatch.setattr(timerfd, "_os_settime", None)
    real, taken = timerfd._settime, []

    def settime(fd: int, flags: int, new: Any, old: Any) -> int:
        taken.extend(ctypes.create_string_buffer(b"\xff" * 31, 32) for _ in range(8))
        return int(real(fd, flags, new, old))

    monkeypatch.setattr(timerfd, "_settime", settime)
    timer = timerfd.TimerFd()
    try:
        for _ in range(50):
            timer.arm_at(time.monotonic() + 60)
            assert _armed(timer.fd)
            timer.disarm()
            assert not _armed(timer.fd)
    finally:
        timer.close()


def test_a_deadline_fires_at_its_time_and_is_consumed_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(timerfd, "_os_settime", None)
    timer = timerfd.TimerFd()
    try:
        timer.arm_at(time.monotonic() + 3600)
        assert not timer.expired()
        timer.arm_at(time.monotonic() - 1)  # already past: fires at once
        assert timer.expired() and not timer.expired()
    finally:
        timer.close()
