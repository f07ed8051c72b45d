"""Runs inside every new kernel before the first user cell.

Imports the heavy libraries named in SANDBOX_PREIMPORT so that a user's first
``import pandas`` is instant, without binding any name in the user's namespace; then
installs the rules that keep one execution out of the next (``cell_boundaries``).
"""

import contextlib
import importlib
import os

import cell_boundaries
from IPython import get_ipython


def run() -> None:
    for name in filter(None, os.environ.get("SANDBOX_PREIMPORT", "").split(",")):
        # A missing optional library must not stop the kernel from starting.
        with contextlib.suppress(Exception):
            importlib.import_module(name.strip())
    # After the pre-imports: matplotlib's inline backend registers its own hooks then,
    # and cell_boundaries must see them.
    cell_boundaries.install(get_ipython())
