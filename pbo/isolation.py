"""Running one evaluation in a forked child process, so that an exception, a crash (segfault, os._exit, the
OOM killer) or a hang ends the trial and not the worker.

Fork, not spawn: a worker that has imported torch and the objective once hands both to every child for free.
The child never calls MPI, leaves with os._exit (no atexit handlers, no MPI_Finalize) and sends its result
back through a pipe as plain pickled data. It leads its own process group, so a timeout kills whatever it
started too.

A child started with `reporting=True` also gets a channel to its parent (`Channel`): the job may send small
messages (intermediate reports) and block for a one-byte answer (continue or stop), while the parent keeps
serving. After `stop(grace)` the parent kills a child that has not ended within `grace` seconds, as it kills
one past its timeout.

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
from typing import Any, Callable, Protocol, Sequence

from pbo.trial import TrialPruned, TrialState

_HEADER = struct.Struct("<Q")


@dataclass
class Finished:
    """How an evaluation ended: the job's return value when OK, a one-line reason otherwise."""

    status: TrialState
    payload: Any = None
    error: str = ""


class Channel(Protocol):
    """The job's side of a reporting child: `send` a small picklable message, get back whether to continue."""

    def send(self, message: Any) -> bool: ...


class InlineChannel:
    """The channel of a job run in the worker's own process (no isolation, the simulated cluster): messages are
    kept in order and the answer is always "continue" (nobody can answer while the job runs)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def send(self, message: Any) -> bool:
        self.messages.append(message)
        return True


class _PipeChannel:
    """The child's side: a framed pickle up, one byte (b"c" continue, b"s" stop) down."""

    def __init__(self, up: int, down: int) -> None:
        self.up, self.down = up, down

    def send(self, message: Any) -> bool:
        data = pickle.dumps(message)
        os.write(self.up, _HEADER.pack(len(data)) + data)  # small messages: one write, never interleaved
        answer = os.read(self.down, 1)
        return answer == b"c"  # b"" (the parent is gone) stops too


def _take_frame(buffer: bytearray) -> bytes | None:
    """Remove and return the first complete frame of `buffer` (a length header, then that many bytes)."""
    if len(buffer) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack_from(buffer)
    if len(buffer) < _HEADER.size + size:
        return None
    frame = bytes(buffer[_HEADER.size:_HEADER.size + size])
    del buffer[:_HEADER.size + size]
    return frame


def _drain(fd: int, buffer: bytearray) -> None:
    """Read everything available from a non-blocking pipe."""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            return
        buffer += chunk


def describe(exc: BaseException) -> str:
    """`Type: message [file:line in function]`: the message and where the traceback ends."""
    text = f"{type(exc).__name__}: {exc}".strip()
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f" [{os.path.basename(last.filename)}:{last.lineno} in {last.name}]"
    return text


def run_inline(job: Callable[..., Any], channel: Channel | None = None) -> Finished:
    """Run `job` in this process (no isolation: a crash takes the caller down, no timeout); `job(channel)`
    when a channel is given."""
    try:
        return Finished(TrialState.OK, job() if channel is None else job(channel))
    except Exception as exc:  # noqa: BLE001 - any exception of the objective is a failed trial
        return Finished(failure_state(exc), error=describe(exc))


def failure_state(exc: BaseException) -> TrialState:
    """How a job that raised `exc` ended: `pruned` for `TrialPruned` (it stopped early on purpose), else failed."""
    return TrialState.PRUNED if isinstance(exc, TrialPruned) else TrialState.FAILED


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
    """One forked evaluation. `prepare` runs first in the child (e.g. to pin a GPU through the environment).
    With `reporting`, the job is called as `job(channel)` and the messages it sends collect in `inbox`."""

    def __init__(self, job: Callable[..., Any], timeout: float | None = None,
                 prepare: Callable[[], None] | None = None, *, reporting: bool = False) -> None:
        self.timeout = timeout
        self.started = time.monotonic()
        self.deadline = None if timeout is None else self.started + timeout
        #: When a child told to stop is killed (see `stop`).
        self.stop_deadline: float | None = None
        self.grace = 0.0
        #: Messages the job sent, in order, not yet taken by the parent.
        self.inbox: list[Any] = []
        sys.stdout.flush()
        sys.stderr.flush()  # or the child would print the parent's buffered text a second time
        read_fd, write_fd = os.pipe()
        up = os.pipe() if reporting else None
        down = os.pipe() if reporting else None
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_fd)
            channel = None
            if up is not None and down is not None:
                os.close(up[0])
                os.close(down[1])
                channel = _PipeChannel(up[1], down[0])
            _child_main(job, prepare, write_fd, channel)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self._up = self._down = -1
        if up is not None and down is not None:
            os.close(up[1])
            os.close(down[0])
            os.set_blocking(up[0], False)
            self._up, self._down = up[0], down[1]
        self.pid = pid
        self._pipe = read_fd
        self._exit = os.pidfd_open(pid)  # readable once the child has exited, even if a grandchild holds the pipe
        self._buffer = bytearray()
        self._messages = bytearray()
        self.result: Finished | None = None

    def fds(self) -> list[int]:
        return [] if self.result else [fd for fd in (self._pipe, self._exit, self._up) if fd >= 0]

    def time_left(self) -> float | None:
        deadlines = [d for d in (self.deadline, self.stop_deadline) if d is not None]
        return min(deadlines) - time.monotonic() if deadlines else None

    def poll(self) -> Finished | None:
        """Collect the messages sent so far, and the result if the child has finished or run out of time (or
        of grace after a stop); never blocks."""
        if self.result is not None:
            return self.result
        self._drain()
        if select.select([self._exit], [], [], 0)[0]:
            _, status = os.waitpid(self.pid, 0)
            self._drain()
            self._finish(self._decode() or Finished(TrialState.FAILED, error=exit_reason(status)))
        elif self.deadline is not None and time.monotonic() >= self.deadline:
            self._finish(Finished(TrialState.TIMEOUT, error=f"timed out after {self.timeout:g} s"), reap=True)
        elif self.stop_deadline is not None and time.monotonic() >= self.stop_deadline:
            self._finish(Finished(TrialState.PRUNED, error=f"killed {self.grace:g} s after the stop request"),
                         reap=True)
        return self.result

    def answer(self, go_on: bool) -> None:
        """Answer the job's last message: continue, or stop."""
        if self.result is None and self._down >= 0:
            try:
                os.write(self._down, b"c" if go_on else b"s")
            except (BrokenPipeError, BlockingIOError):
                pass  # the child has gone, or answers pile up unread: it will be reaped or killed

    def stop(self, grace: float) -> None:
        """The job was told to stop: kill it if it has not ended `grace` seconds from now."""
        if self.stop_deadline is None:
            self.grace = grace
            self.stop_deadline = time.monotonic() + grace

    def kill(self) -> None:
        """Kill the child and its process group, and reap it."""
        if self.result is None:
            self._finish(Finished(TrialState.FAILED, error="killed by the worker"), reap=True)

    def _finish(self, result: Finished, reap: bool = False) -> None:
        self.result = result
        _killpg(self.pid)  # leftovers the objective started (data loaders, compilers) go with it
        if reap:
            os.waitpid(self.pid, 0)
        for fd in (self._pipe, self._exit, self._up, self._down):
            if fd >= 0:
                os.close(fd)

    def _drain(self) -> None:
        _drain(self._pipe, self._buffer)
        if self._up >= 0:
            _drain(self._up, self._messages)
            while (frame := _take_frame(self._messages)) is not None:
                self.inbox.append(pickle.loads(frame))

    def _decode(self) -> Finished | None:
        frame = _take_frame(self._buffer)
        if frame is None:
            return None
        ok, value = pickle.loads(frame)
        if ok:
            return Finished(TrialState.OK, value)
        status, error = value
        return Finished(TrialState(status), error=error)


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _child_main(job: Callable[..., Any], prepare: Callable[[], None] | None, write_fd: int,
                channel: Channel | None) -> None:
    code = 0
    try:
        os.setpgid(0, 0)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        try:
            if prepare is not None:
                prepare()
            message = (True, job() if channel is None else job(channel))
            data = pickle.dumps(message)
        except BaseException as exc:  # noqa: BLE001 - everything the job raises is reported
            data = pickle.dumps((False, (failure_state(exc).value, describe(exc))))
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
    """The children that have finished (or timed out) or have messages in their inbox, waiting up to `timeout`
    seconds for the first one."""
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        done = [c for c in children if c.poll() is not None or c.inbox]
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
    while child.poll() is None:
        wait_any([child], None)
    return child.result
