"""Writes that survive a kill or a power loss at any moment: a line appended and fsync'd, and
a file replaced atomically."""
from __future__ import annotations

import os
from pathlib import Path


def append_line(path: Path, line: str) -> None:
    """Append ``line`` and fsync; after a torn last line (a kill mid-append), on a line of its own."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        size = os.fstat(descriptor).st_size
        torn = size > 0 and os.pread(descriptor, 1, size - 1) != b"\n"
        os.write(descriptor, (("\n" if torn else "") + line).encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def replace_file(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` atomically (write aside, fsync, rename)."""
    aside = path.with_name(path.name + ".tmp")
    with open(aside, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(aside, path)
