"""Typed errors of the model runner.

Every ``Generator`` raises these, local or remote, so the service maps one set of
exceptions to HTTP errors whichever model it was given. They surface when a
``GenerationStream`` is first iterated, not from ``generate`` itself, because a remote
generator only learns of them from the server's answer.
"""

from __future__ import annotations


class ModelRunnerError(Exception):
    """Base class. ``code`` is a stable machine-readable name for the wire."""

    code = "model_error"


class InvalidGenerationRequest(ModelRunnerError):
    """The request cannot be served: empty prompt, bad ids, too long for the context."""

    code = "invalid_request"


class ModelNotFound(ModelRunnerError):
    """A model spec names a checkpoint that is not there."""

    code = "model_not_found"


class ModelTooLarge(ModelRunnerError):
    """The model's weights do not fit the device it was asked to run on."""

    code = "model_too_large"


class ModelUnavailable(ModelRunnerError):
    """A served model cannot be reached, or it dropped the stream midway."""

    code = "model_unavailable"


class ModelMismatch(ModelRunnerError):
    """A model the service cannot drive: a served one whose vocabulary is not harmony's,
    or a checkpoint of another architecture than gpt-oss for the batching runner."""

    code = "model_mismatch"


class GenerationFailed(ModelRunnerError):
    """The model itself failed while generating (out of memory, a CUDA error...)."""

    code = "generation_failed"


ERRORS_BY_CODE: dict[str, type[ModelRunnerError]] = {
    cls.code: cls
    for cls in (
        ModelRunnerError,
        InvalidGenerationRequest,
        ModelNotFound,
        ModelTooLarge,
        ModelUnavailable,
        ModelMismatch,
        GenerationFailed,
    )
}
