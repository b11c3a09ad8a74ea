"""The fenced code blocks of a Markdown file: the files a worked example saves
(```` ```python file=my_dgps.py ````) and the ``clustersim`` commands it runs."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", flags=re.MULTILINE | re.DOTALL)


def blocks(text: str) -> list[tuple[str, str]]:
    """(info string, body) of every fenced block, in order."""
    return [(match.group(1).strip(), match.group(2)) for match in FENCE.finditer(text)]


def save_files(text: str, folder: Path) -> list[Path]:
    """Write every block whose info string has ``file=<path>`` to ``folder/<path>``."""
    written = []
    for info, body in blocks(text):
        name = next((word.split("=", 1)[1] for word in info.split() if word.startswith("file=")), None)
        if name:
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
            written.append(path)
    return written


def commands(text: str, program: str = "clustersim") -> list[str]:
    """Every line of a ``bash`` block that runs ``program`` (after ``VAR=value`` words), with
    its trailing comment cut off; a line joined by ``&&`` counts as one command each side."""
    found = []
    for info, body in blocks(text):
        if info.split()[:1] != ["bash"]:
            continue
        for line in body.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                program_words = [w for w in words if "=" not in w or w.startswith("-")]
                if program_words[:1] == [program]:
                    found.append(shlex.join(words))
    return found
