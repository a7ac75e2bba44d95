"""A timerfd(2) on CLOCK_MONOTONIC (asyncio's clock): a wakeup to the microsecond.

asyncio's own timers wait in epoll_wait, whose timeout is in whole milliseconds,
rounded up; a wakeup that comes a hair early is rounded up again. Measured here, a
``call_at`` every 10 ms ran 1.3 ms late at the median, a timerfd 0.3 ms: for 10 ms
adverts that is the difference between jitter under the protocol's margin and not.
Python 3.13 has ``os.timerfd_create``; before it, the same calls through libc.
"""

from __future__ import annotations

import ctypes
import os
import time

CLOCK_MONOTONIC = time.CLOCK_MONOTONIC
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC
TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_libc = ctypes.CDLL(None, use_errno=True)
# Declared once: ctypes then converts the arguments without guessing (armed once per
# wakeup, 100 times a second at 10 ms adverts).
_settime = _libc.timerfd_settime
_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
_settime.restype = ctypes.c_int
# Looked up once: hasattr() on a missing attribute raises and catches an AttributeError.
_os_settime = getattr(os, "timerfd_settime", None)  # Python 3.13


def _check(result: int) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(result)


class TimerFd:
    """One-shot, absolute deadlines; readable once a deadline has passed."""

    def __init__(self) -> None:
        flags = TFD_NONBLOCK | TFD_CLOEXEC
        if hasattr(os, "timerfd_create"):
            self.fd = int(os.timerfd_create(CLOCK_MONOTONIC, flags=flags))
        else:
            self.fd = int(_check(_libc.timerfd_create(CLOCK_MONOTONIC, flags)))
        # The one itimerspec each arm_at fills in (no structure built per call), and a
        # zeroed one for disarm. Both live as long as the timer: the kernel reads them
        # after ctypes has taken their address, and a temporary's memory would be free
        # (and handed to the next allocation) by then.
        self._spec = _Itimerspec()
        self._spec_ref = ctypes.addressof(self._spec)
        self._off = _Itimerspec()
        self._off_ref = ctypes.addressof(self._off)

    def fileno(self) -> int:
        return self.fd

    def arm_at(self, deadline: float) -> None:
        """Readable at ``deadline`` (CLOCK_MONOTONIC seconds, as ``loop.time()``)."""
        # 0 would disarm: a deadline already past fires at once all the same.
        deadline = max(deadline, 1e-9)
        if _os_settime is not None:
            _os_settime(self.fd, flags=TFD_TIMER_ABSTIME, initial=deadline)
            return
        sec = int(deadline)
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = sec, int((deadline - sec) * 1e9)
        if _settime(self.fd, TFD_TIMER_ABSTIME, self._spec_ref, None) < 0:
            _check(-1)

    def disarm(self) -> None:
        if _os_settime is not None:
            _os_settime(self.fd, initial=0)
            return
        _check(_settime(self.fd, 0, self._off_ref, None))

    def expired(self) -> bool:
        """Consume the expiry; False if it was not (yet) due."""
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
