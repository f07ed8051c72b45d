"""What a serving process does once it has started (``model_runner/startup.py``): the
SDK's deferred wire types built, and one token generated, before the first request."""

from __future__ import annotations

import types

import pydantic
from openai import BaseModel as SdkModel

from interpreter.api.app import WIRE_MODULES, build_wire_types
from model_runner.startup import build_deferred_models, warm_up
from model_runner.transformers_backend import TransformersGenerator


def test_deferred_models_that_a_module_names_are_built_once() -> None:
    class Deferred(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(defer_build=True)
        x: int

    module = types.ModuleType("wire_like")
    module.Deferred = Deferred  # type: ignore[attr-defined]
    module.BaseModel = pydantic.BaseModel  # type: ignore[attr-defined]  # the base: skipped
    module.number = 3  # type: ignore[attr-defined]
    assert not Deferred.__pydantic_complete__
    assert build_deferred_models(module) == 1
    assert Deferred.__pydantic_complete__
    assert build_deferred_models(module) == 0
    assert Deferred(x=1).x == 1


def test_every_sdk_type_the_service_sends_is_built() -> None:
    build_wire_types()
    sdk_types = [
        value
        for module in WIRE_MODULES
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, SdkModel) and value is not SdkModel
    ]
    assert len(sdk_types) > 20
    assert all(cls.__pydantic_complete__ for cls in sdk_types)


def test_warm_up_generates_one_token(
    full_vocab_generator: TransformersGenerator,
) -> None:
    stats = full_vocab_generator.stats
    generations, tokens = stats.generations, stats.completion_tokens
    warm_up(full_vocab_generator)
    assert (stats.generations, stats.completion_tokens) == (generations + 1, tokens + 1)
