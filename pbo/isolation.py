"""Running one evaluation in a forked child process, so that an exception, a crash (segfault, os._exit, the
OOM killer) or a hang ends the trial and not the worker.

Fork, not spawn: a worker that has imported torch and the objective once hands both to every child for free.
The child never calls MPI, leaves with os._exit (no atexit handlers, no MPI_Finalize) and sends its result
back through a pipe as plain pickled data. It leads its own process group, so a timeout kills whatever it
started too.

Example:
    >>> run_isolated(lambda: 1 + 1).payload
    2
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from pbo.trial import TrialState

_HEADER = struct.Struct("<Q")


@dataclass
class Finished:
    """How an evaluation ended: the job's return value when OK, a one-line reason otherwise."""

    status: TrialState
    payload: Any = None
    error: str = ""


def describe(exc: BaseException) -> str:
    """`Type: message [file:line in function]`: the message and where the traceback ends."""
    text = f"{type(exc).__name__}: {exc}".strip()
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f" [{os.path.basename(last.filename)}:{last.lineno} in {last.name}]"
    return text


def run_inline(job: Callable[[], Any]) -> Finished:
    """Run `job` in this process (no isolation: a crash takes the caller down, no timeout)."""
    try:
        return Finished(TrialState.OK, job())
    except Exception as exc:  # noqa: BLE001 - any exception of the objective is a failed trial
        return Finished(TrialState.FAILED, error=describe(exc))


def exit_reason(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = " (out of memory?)" if sig == signal.SIGKILL else ""
        return f"child process killed by {name}{hint}"
    return f"child process exited with code {os.waitstatus_to_exitcode(status)} before returning a result"


class Child:
    """One forked evaluation. `prepare` runs first in the child (e.g. to pin a GPU through the environment)."""

    def __init__(self, job: Callable[[], Any], timeout: float | None = None,
                 prepare: Callable[[], None] | None = None) -> None:
        self.timeout = timeout
        self.started = time.monotonic()
        self.deadline = None if timeout is None else self.started + timeout
        sys.stdout.flush()
        sys.stderr.flush()  # or the child would print the parent's buffered text a second time
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_fd)
            _child_main(job, prepare, write_fd)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.pid = pid
        self._pipe = read_fd
        self._exit = os.pidfd_open(pid)  # readable once the child has exited, even if a grandchild holds the pipe
        self._buffer = bytearray()
        self.result: Finished | None = None

    def fds(self) -> list[int]:
        return [] if self.result else [self._pipe, self._exit]

    def time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def poll(self) -> Finished | None:
        """Collect the result if the child has finished or run out of time; never blocks."""
        if self.result is not None:
            return self.result
        self._drain()
        if select.select([self._exit], [], [], 0)[0]:
            _, status = os.waitpid(self.pid, 0)
            self._drain()
            self._finish(self._decode() or Finished(TrialState.FAILED, error=exit_reason(status)))
        elif self.deadline is not None and time.monotonic() >= self.deadline:
            self._finish(Finished(TrialState.TIMEOUT, error=f"timed out after {self.timeout:g} s"), reap=True)
        return self.result

    def kill(self) -> None:
        """Kill the child and its process group, and reap it."""
        if self.result is None:
            self._finish(Finished(TrialState.FAILED, error="killed by the worker"), reap=True)

    def _finish(self, result: Finished, reap: bool = False) -> None:
        self.result = result
        _killpg(self.pid)  # leftovers the objective started (data loaders, compilers) go with it
        if reap:
            os.waitpid(self.pid, 0)
        os.close(self._pipe)
        os.close(self._exit)

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self._pipe, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                return
            self._buffer += chunk

    def _decode(self) -> Finished | None:
        if len(self._buffer) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self._buffer)
        if len(self._buffer) < _HEADER.size + size:
            return None
        ok, value = pickle.loads(bytes(self._buffer[_HEADER.size:_HEADER.size + size]))
        return Finished(TrialState.OK, value) if ok else Finished(TrialState.FAILED, error=value)


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _child_main(job: Callable[[], Any], prepare: Callable[[], None] | None, write_fd: int) -> None:
    code = 0
    try:
        os.setpgid(0, 0)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        try:
            if prepare is not None:
                prepare()
            message = (True, job())
            data = pickle.dumps(message)
        except BaseException as exc:  # noqa: BLE001 - everything the job raises is reported
            data = pickle.dumps((False, describe(exc)))
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(_HEADER.pack(len(data)) + data)
    except BaseException:  # noqa: BLE001 - the parent reports the exit code
        code = 70
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def wait_any(children: Sequence[Child], timeout: float | None) -> list[Child]:
    """The children that have finished (or timed out), waiting up to `timeout` seconds for the first one."""
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        done = [c for c in children if c.poll() is not None]
        if done or not children:
            return done
        waits = [t for t in [None if end is None else end - time.monotonic(),
                             *(c.time_left() for c in children)] if t is not None]
        wait = max(0.0, min(waits)) if waits else None
        if end is not None and end - time.monotonic() <= 0:
            return []
        select.select([fd for c in children for fd in c.fds()], [], [], wait)


def run_isolated(job: Callable[[], Any], timeout: float | None = None,
                 prepare: Callable[[], None] | None = None) -> Finished:
    """Run `job` in a child process and wait for it."""
    child = Child(job, timeout, prepare)
    while not wait_any([child], None):
        pass
    return child.result
