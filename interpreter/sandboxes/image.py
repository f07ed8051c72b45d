"""The sandbox image's content tag.

The image is tagged by a hash of ``sandbox_image/``'s files, so an unchanged folder is
never rebuilt and a changed one always is. ``scripts/setup.sh`` builds under this tag and
the service looks for the same tag, so both compute it here.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

REPOSITORY = "code-interpreter-sandbox"
SOURCE_DIR = Path(__file__).resolve().parents[2] / "sandbox_image"


def content_hash(folder: Path = SOURCE_DIR) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def default_tag(folder: Path = SOURCE_DIR) -> str:
    return f"{REPOSITORY}:{content_hash(folder)}"


if __name__ == "__main__":
    sys.stdout.write(default_tag() + "\n")
