"""``load_generator``: a model spec string to a ``Generator``.

Importing this module imports neither torch nor transformers: the service imports it
and may run with only a served model (an ``http://`` spec) and no model stack.

| spec | generator |
|---|---|
| ``demo`` | the demo checkpoint shipped in ``model_runner/demo/checkpoint/`` |
| ``random:gpt-oss-20b`` (or ``-120b``, ``tiny``) | real shapes, random weights |
| a folder, or a hub id (``openai/gpt-oss-20b``) | that checkpoint, with transformers |
| ``http://host:port`` | this project's runner (``python -m model_runner serve``) |
| ``vllm+http://host:port`` | a vLLM server |
| ``sglang+http://host:port`` | an SGLang server |
| ``llamacpp+http://host:port`` | llama.cpp's ``llama-server`` |

``https`` works wherever ``http`` does.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from model_runner.errors import ModelNotFound
from model_runner.generator import Generator

#: Where the demo model's trainer saves its checkpoint (``model_runner/demo/``).
DEMO_CHECKPOINT = Path(__file__).parent / "demo" / "checkpoint"

RANDOM_PREFIX = "random:"

#: URL schemes of served models: the engine's name -> the generator class that speaks
#: its wire format ("module:Class", imported only when used).
ENGINES: dict[str, str] = {
    "": "model_runner.engines.runner:RunnerGenerator",
    "vllm": "model_runner.engines.vllm:VLLMGenerator",
    "sglang": "model_runner.engines.sglang:SGLangGenerator",
    "llamacpp": "model_runner.engines.llamacpp:LlamaCppGenerator",
}


def _served(spec: str, options: dict[str, Any]) -> Generator:
    scheme, _, rest = spec.partition("://")
    engine, _, transport = scheme.rpartition("+")
    module, _, name = ENGINES[engine].partition(":")
    cls = getattr(importlib.import_module(module), name)
    generator: Generator = cls.connect(f"{transport}://{rest}", **options)
    return generator


def _demo(spec: str, options: dict[str, Any]) -> Generator:
    from model_runner.transformers_backend import TransformersGenerator

    if not (DEMO_CHECKPOINT / "config.json").is_file():
        raise ModelNotFound(
            f"the demo checkpoint is not in {DEMO_CHECKPOINT}; train it first "
            "(see model_runner/demo/) or name another model"
        )
    options.setdefault("name", "gpt-oss-demo")
    # A small demonstrator: reliable only when greedy.
    options.setdefault("default_temperature", 0.0)
    # Its matrices are too small to split: a second intra-op thread mostly waits at
    # barriers while taking a core from the service and the sandboxes (on 2 cores, one
    # thread served 1.35x the tokens/s at 1 conversation and 1.4x at 8).
    options.setdefault("cpu_threads", 1)
    return TransformersGenerator.from_pretrained(DEMO_CHECKPOINT, **options)


def _random(spec: str, options: dict[str, Any]) -> Generator:
    from model_runner.shapes import SHAPES
    from model_runner.transformers_backend import TransformersGenerator

    shape = spec.removeprefix(RANDOM_PREFIX)
    if shape not in SHAPES:
        raise ModelNotFound(f"no model shape {shape!r}; known: {', '.join(SHAPES)}")
    return TransformersGenerator.from_random(shape, **options)


def _checkpoint(spec: str, options: dict[str, Any]) -> Generator:
    from model_runner.transformers_backend import TransformersGenerator

    if _looks_like_path(spec) and not Path(spec).expanduser().is_dir():
        raise ModelNotFound(f"no checkpoint folder at {spec}")
    try:
        return TransformersGenerator.from_pretrained(Path(spec).expanduser().as_posix(), **options)
    except OSError as exc:  # transformers' answer to a missing hub id or offline miss
        raise ModelNotFound(f"cannot load model {spec!r}: {exc}") from exc


def _kind(spec: str) -> Callable[[str, dict[str, Any]], Generator]:
    scheme = spec.partition("://")[0] if "://" in spec else None
    if scheme is not None:
        engine, _, transport = scheme.rpartition("+")
        if transport in ("http", "https") and engine in ENGINES:
            return _served
        known = ", ".join(f"{e}+http" if e else "http" for e in ENGINES)
        raise ModelNotFound(f"unknown model URL scheme {scheme!r}; known: {known}")
    if spec == "demo":
        return _demo
    if spec.startswith(RANDOM_PREFIX):
        return _random
    return _checkpoint


def load_generator(spec: str, **options: Any) -> Generator:
    """Build the generator a spec names (see the table above).

    ``options`` go to the generator's constructor: for local models ``device``,
    ``dtype``, ``name``, ``cache_budget_bytes``, ``max_batch``, ``context_length``,
    ``prefill_chunk_tokens``, ``cpu_threads`` (and ``seed`` for random weights); for
    served ones ``name``, ``concurrency`` and ``timeout``. Blocks while a local model
    loads or a served one is probed: call it from a thread in async code. Raises
    ``ModelNotFound``, or ``ModelUnavailable`` / ``ModelMismatch`` for a served model
    that does not answer or does not speak harmony.
    """
    return _kind(spec)(spec, options)


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", ".", "~")) or Path(spec).expanduser().exists()
