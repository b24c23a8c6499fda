"""Files on disk: opening a log for reading (live, finished or killed), checking a place to write one, and
the atomic rewrite that adds columns, cleans a killed file and prepares it for resume.

SWMR forbids creating datasets while it is on, and a file whose SWMR writer was killed can only be opened
with `swmr=True` (HDF5 leaves its "open for write" flag set). Both are solved the same way: copy the
committed rows into a fresh file next to it, change what is needed, fsync, and `os.replace` it over the old
one. At every instant the path holds either the old or the new complete file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

import h5py

from pbo.log.layout import committed_rows

#: Below this much free space a new run refuses to start (a long LLM study writes a few MiB).
MIN_FREE_BYTES = 16 * 2 ** 20


class LogError(Exception):
    """A log that cannot be written, read or resumed; the message names the file and the problem in one line."""


def open_readable(path: str | Path) -> h5py.File:
    """Open a log read-only, whether finished, live (SWMR) or left by a killed writer."""
    path = Path(path)
    if not path.is_file():
        raise LogError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise LogError(f"{path} is not an HDF5 file")
    try:
        return h5py.File(path, "r", swmr=True, locking="best-effort")
    except OSError:
        pass
    try:  # files written without libver="latest" (not by pbo) cannot be opened in SWMR read mode
        return h5py.File(path, "r", locking="best-effort")
    except OSError as exc:
        raise LogError(f"{path}: cannot open ({first_line(exc)})") from None


def open_for_append(path: Path) -> h5py.File:
    """Open a cleanly closed log for writing and switch SWMR on, so readers may follow it live."""
    handle = h5py.File(path, "a", libver="latest", locking="best-effort")
    handle.swmr_mode = True
    return handle


def check_writable(path: Path, *, overwrite: bool) -> None:
    """Refuse, before any trial runs, a place where the log could not be written."""
    folder = path.parent
    if path.exists() and not overwrite:
        raise LogError(f"{path} already exists (give --overwrite to replace it, or --resume {path} to continue it)")
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


def rewrite(path: Path, *, change: Callable[[h5py.File], None] | None = None,
            attrs: Mapping[str, Any] | None = None) -> None:
    """Replace `path` by a clean copy of its committed rows, with `attrs` set and `change` applied."""
    scratch = path.with_name(path.name + ".rewrite")
    with open_readable(path) as src, h5py.File(scratch, "w", libver="latest", locking="best-effort") as dst:
        dst.attrs.update(dict(src.attrs))
        dst.attrs.update(dict(attrs or {}))
        for table, group in src.items():
            if isinstance(group, h5py.Group):
                _copy_table(group, dst.create_group(table, track_order=True))
        if change is not None:
            change(dst)
        fsync(dst)
    os.replace(scratch, path)
    _fsync_folder(path.parent)


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
