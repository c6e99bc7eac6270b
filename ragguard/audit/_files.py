"""Where an audit chain lives on disk: the active file and its rotated predecessors.

``audit.jsonl`` is always the file being appended to. Rotation renames it to
``audit.000001.jsonl``, ``audit.000002.jsonl``, ... (numbers only grow), so the chain
reads, in order: every rotated file by number, then the active file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

__all__ = ["audit_files", "expand_audit_paths", "last_line", "rotated_files", "rotated_path"]

_TAIL_BLOCK = 64 * 1024


def rotated_path(path: Path, number: int) -> Path:
    """The name the active file ``path`` gets when it is rotated as number ``number``."""
    return path.with_name(f"{path.stem}.{number:06d}{path.suffix}")


def rotated_files(path: Path) -> list[tuple[int, Path]]:
    """The rotated files of the chain whose active file is ``path``, oldest first."""
    pattern = re.compile(re.escape(path.stem) + r"\.(\d{6,})" + re.escape(path.suffix) + r"\Z")
    directory = path.parent
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        match = pattern.match(name)
        if match:
            found.append((int(match.group(1)), directory / name))
    return sorted(found)


def audit_files(path: str | os.PathLike[str]) -> list[Path]:
    """Every file of the chain whose active file is ``path``, in chain order.

    ::

        audit_files("logs/audit.jsonl")
        # [PosixPath('logs/audit.000001.jsonl'), PosixPath('logs/audit.jsonl')]

    A rotated file (``audit.000001.jsonl``) or a file without rotated siblings stands
    for itself.
    """
    active = Path(path)
    files = [p for _, p in rotated_files(active)]
    if active.exists() or not files:
        files.append(active)
    return files


def expand_audit_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand each path to its chain (:func:`audit_files`), dropping repeats."""
    seen: set[Path] = set()
    ordered: list[Path] = []
    for path in paths:
        for file in audit_files(path):
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                ordered.append(file)
    return ordered


def last_line(fd: int, size: int) -> bytes | None:
    """The last line of the open file ``fd`` of ``size`` bytes, without its newline.

    ``None`` for an empty file. Raises ``ValueError`` when the file does not end with a
    newline (its last record was cut short).
    """
    if size == 0:
        return None
    if os.pread(fd, 1, size - 1) != b"\n":
        raise ValueError("the file does not end with a newline: its last record is truncated")
    buffer = b""
    position = size
    while position > 0:
        step = min(_TAIL_BLOCK, position)
        position -= step
        buffer = os.pread(fd, step, position) + buffer
        start = buffer.rfind(b"\n", 0, len(buffer) - 1)
        if start >= 0:
            return buffer[start + 1 : -1]
    return buffer[:-1]
