"""``load_generator``: a model spec string to a ``Generator``.

Importing this module imports neither torch nor transformers: the service imports it
and may run with only a served model (an ``http://`` spec) and no model stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from model_runner.errors import ModelNotFound
from model_runner.generator import Generator

#: Where the demo model's trainer saves its checkpoint (``model_runner/demo/``).
DEMO_CHECKPOINT = Path(__file__).parent / "demo" / "checkpoint"

RANDOM_PREFIX = "random:"


def load_generator(spec: str, **options: Any) -> Generator:
    """Build the generator a spec names.

    - ``http://host:port`` or ``https://...``: a served runner (``HTTPGenerator``).
    - ``demo``: the demo checkpoint shipped in ``model_runner/demo/checkpoint/``.
    - ``random:gpt-oss-20b``, ``random:gpt-oss-120b``, ``random:tiny``: the real shapes
      with random weights (``model_runner.shapes``), for benchmarks and tests.
    - anything else: a local checkpoint folder or a hugging face hub id.

    ``options`` go to the generator's constructor: for local models ``device``,
    ``dtype``, ``name``, ``cache_budget_bytes``, ``prefill_chunk_tokens`` (and ``seed``
    for random weights); for served ones ``name`` and ``timeout``. Blocks while a local
    model loads: call it from a thread in async code. Raises ``ModelNotFound``.
    """
    if spec.startswith(("http://", "https://")):
        from model_runner.http_client import HTTPGenerator

        return HTTPGenerator.connect(spec, **options)

    # torch and transformers load only past this point.
    from model_runner.transformers_backend import TransformersGenerator

    if spec == "demo":
        if not (DEMO_CHECKPOINT / "config.json").is_file():
            raise ModelNotFound(
                f"the demo checkpoint is not in {DEMO_CHECKPOINT}; train it first "
                "(see model_runner/demo/) or name another model"
            )
        options.setdefault("name", "gpt-oss-demo")
        # A small demonstrator: reliable only when greedy.
        options.setdefault("default_temperature", 0.0)
        return TransformersGenerator.from_pretrained(DEMO_CHECKPOINT, **options)

    if spec.startswith(RANDOM_PREFIX):
        from model_runner.shapes import SHAPES

        shape = spec.removeprefix(RANDOM_PREFIX)
        if shape not in SHAPES:
            raise ModelNotFound(f"no model shape {shape!r}; known: {', '.join(SHAPES)}")
        return TransformersGenerator.from_random(shape, **options)

    if _looks_like_path(spec) and not Path(spec).expanduser().is_dir():
        raise ModelNotFound(f"no checkpoint folder at {spec}")
    try:
        return TransformersGenerator.from_pretrained(Path(spec).expanduser().as_posix(), **options)
    except OSError as exc:  # transformers' answer to a missing hub id or offline miss
        raise ModelNotFound(f"cannot load model {spec!r}: {exc}") from exc


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", ".", "~")) or Path(spec).expanduser().exists()
