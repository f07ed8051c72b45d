"""Runs inside every new kernel before the first user cell.

Imports the heavy libraries named in SANDBOX_PREIMPORT so that a user's first
``import pandas`` is instant, without binding any name in the user's namespace.
"""

import contextlib
import importlib
import os


def run() -> None:
    for name in filter(None, os.environ.get("SANDBOX_PREIMPORT", "").split(",")):
        # A missing optional library must not stop the kernel from starting.
        with contextlib.suppress(Exception):
            importlib.import_module(name.strip())
