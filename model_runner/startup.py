"""What a long-lived server process does once it has started.

Such a process holds a few hundred thousand objects from its imports and set-up (the
model's process about 350,000: torch, transformers, the model). CPython's full
collections walk every one of them, stopping the process for 95 to 140 ms here, now and
then while it serves (seen with ``gc.callbacks`` under ``bench/model_concurrency.py``:
the service's process once in each run, mid-measurement). ``gc.freeze()`` moves them out
of the collector's sight, so later collections walk only what was made since. Frozen
objects are still freed when their last reference goes; only a cycle among them that
becomes garbage later is kept.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Collect what start-up left, then freeze what is alive."""
    gc.collect()
    gc.freeze()
