"""Writing to the service's data folder: every write is whole or absent (a crash or a
full disk never leaves half a file or half a row), and a full disk is a clear
``StoreFull`` (507), other failures ``StoreUnavailable`` (503)."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from interpreter.errors import StoreFull, StoreUnavailable

PARTIAL_SUFFIX = ".partial"


def store_full(folder: Path) -> StoreFull:
    return StoreFull(
        f"The service's data folder ({folder}) is full: nothing new can be stored until "
        "space is freed. What is already stored is intact."
    )


def write_atomically(path: Path, data: bytes) -> None:
    """``path`` holds ``data`` afterwards, or (on any failure) what it held before."""
    partial = path.with_name(f".{path.name}{PARTIAL_SUFFIX}")
    try:
        partial.write_bytes(data)
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise store_full(path.parent) from exc
        raise StoreUnavailable(f"Could not write {path.name} in the data folder: {exc}") from exc


def remove_partial_writes(folder: Path) -> None:
    """What a crash in the middle of ``write_atomically`` left."""
    for partial in folder.glob(f".*{PARTIAL_SUFFIX}"):
        partial.unlink(missing_ok=True)


@contextlib.contextmanager
def sqlite_errors(path: Path, what: str) -> Iterator[None]:
    """SQLite's errors as the service reports them. Each statement is its own
    transaction, so a failed write leaves the database as it was."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "full" in str(exc):  # SQLITE_FULL: "database or disk is full"
            raise store_full(path.parent) from exc
        raise StoreUnavailable(f"The {what} failed: {exc}") from exc
