"""Runs inside every new kernel before the first user cell.

Imports the heavy libraries named in SANDBOX_PREIMPORT so that a user's first
``import pandas`` is instant, without binding any name in the user's namespace.
"""

import importlib
import os


def run() -> None:
    for name in filter(None, os.environ.get("SANDBOX_PREIMPORT", "").split(",")):
        try:
            importlib.import_module(name.strip())
        except Exception:  # a missing optional library must not stop the kernel
            pass
