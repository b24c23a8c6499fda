"""Files on disk: opening a log for reading (live, finished or killed), checking a place to write one, and
the atomic rewrite that adds columns, cleans a killed file and prepares it for resume.

SWMR forbids creating datasets while it is on, and a file whose SWMR writer was killed can only be opened
with `swmr=True` (HDF5 leaves its "open for write" flag set). Both are solved the same way: copy the
committed rows into a fresh file next to it, change what is needed, fsync, and `os.replace` it over the old
one. At every instant the path holds either the old or the new complete file. A new log is created the
same way, so a kill during creation leaves no half-made file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import h5py

from pbo.log.layout import committed_rows

#: Below this much free space a new run refuses to start (a long LLM study writes a few MiB).
MIN_FREE_BYTES = 16 * 2 ** 20


class LogError(Exception):
    """A log that cannot be written, read or resumed; the message names the file and the problem in one line."""


def open_readable(path: str | Path) -> h5py.File:
    """Open a log read-only, whether finished, live (SWMR) or left by a killed writer.

    SWMR read mode is only used for a file whose writer has not closed it (live or killed): that mode also
    accepts the torn end a kill can leave, but it retries unreadable metadata for minutes instead of failing,
    so a damaged, closed file must fail in the plain mode.
    """
    path = Path(path)
    if not path.is_file():
        raise LogError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise LogError(f"{path} is not an HDF5 file")
    try:
        return h5py.File(path, "r", swmr=_writer_flag(path), locking="best-effort")
    except OSError as exc:
        raise LogError(f"{path}: cannot open ({first_line(exc)})") from None


def _writer_flag(path: Path) -> bool:
    """Whether the superblock (version 2 or later, at offset 0) says a writer has the file open."""
    with open(path, "rb") as raw:
        head = raw.read(12)
    return len(head) == 12 and head[:8] == b"\x89HDF\r\n\x1a\n" and head[8] >= 2 and head[11] != 0


def writer_id() -> str:
    """`host:pid` of this process, stored in the `writer` attribute of a log it writes."""
    return f"{socket.gethostname()}:{os.getpid()}"


def check_not_live(path: Path) -> None:
    """Refuse to take over a log whose writer is still running on this host (a run resumed twice at once
    would write two files, of which only one survives). A killed writer leaves the same flag, but its process
    is gone; a writer on another host cannot be checked."""
    if not _writer_flag(path):
        return
    with open_readable(path) as handle:
        host, _, pid = str(handle.attrs.get("writer", "")).rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and int(pid) != os.getpid() and _running(int(pid)):
        raise LogError(f"{path} is still being written by process {pid} on {host}; stop that run first")


def _running(pid: int) -> bool:
    """Whether a process of ours with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except (ProcessLookupError, PermissionError):
        return False
    except OSError:  # no /proc: trust kill()
        return True


def open_for_append(path: Path) -> h5py.File:
    """Open a cleanly closed log for writing and switch SWMR on, so readers may follow it live."""
    handle = h5py.File(path, "a", libver="latest", locking="best-effort")
    handle.swmr_mode = True
    return handle


def detach(handle: h5py.File) -> None:
    """Point a writer's file descriptor at /dev/null after a failed write. HDF5 would otherwise write its
    superblock again when the handle closes (at the latest when Python exits), marking the file as cleanly
    closed while its end is missing; left alone, the file keeps its "writer did not finish" flag and opens
    in SWMR mode like the file of a killed run."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(null, handle.id.get_vfd_handle())
    finally:
        os.close(null)


def check_writable(path: Path, *, overwrite: bool) -> None:
    """Refuse, before any trial runs, a place where the log could not be written."""
    folder = path.parent
    if path.exists() and not overwrite:
        raise LogError(f"{path} already exists (give --overwrite to replace it, or --resume {path} to continue it)")
    if path.is_file():
        check_not_live(path)
    if path.is_dir():
        raise LogError(f"{path} is a folder, not a log file")
    if not folder.is_dir():
        raise LogError(f"log folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise LogError(f"log folder {folder} is not writable")
    check_space(folder)


def check_space(folder: Path) -> None:
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        raise LogError(f"log folder {folder} has only {free / 2 ** 20:.1f} MiB free "
                       f"(need {MIN_FREE_BYTES // 2 ** 20} MiB)")


def fsync(handle: h5py.File) -> None:
    """Push the file to the disk (flush alone reaches the OS, which survives SIGKILL but not a power cut)."""
    handle.flush()
    os.fsync(handle.id.get_vfd_handle())


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[h5py.File]:
    """A new file written beside `path` that atomically replaces it when the block ends without error."""
    scratch = path.with_name(path.name + ".partial")
    try:
        with h5py.File(scratch, "w", libver="latest", locking="best-effort") as handle:
            yield handle
            fsync(handle)
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)
    _fsync_folder(path.parent)


def rewrite(path: Path, *, change: Callable[[h5py.File], None] | None = None,
            attrs: Mapping[str, Any] | None = None) -> None:
    """Replace `path` by a clean copy of its committed rows, with `attrs` set and `change` applied."""
    with open_readable(path) as src, replacing(path) as dst:
        dst.attrs.update(dict(src.attrs))
        dst.attrs.update(dict(attrs or {}))
        for table, group in src.items():
            if isinstance(group, h5py.Group):
                _copy_table(group, dst.create_group(table, track_order=True))
        if change is not None:
            change(dst)


def _copy_table(src: h5py.Group, dst: h5py.Group) -> None:
    dst.attrs.update(dict(src.attrs))
    rows = committed_rows(src)
    for name, column in src.items():
        data = column[:rows]
        fill = column.fillvalue if column.dtype.kind == "f" else None
        copy = dst.create_dataset(name, data=data, maxshape=(None,) + data.shape[1:], chunks=column.chunks,
                                  fillvalue=fill, compression=column.compression)
        copy.attrs.update(dict(column.attrs))


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
