"""Domain errors. Deeper layers raise these; ``interpreter.api.errors`` alone turns
them into HTTP responses in OpenAI's error shape."""

from __future__ import annotations


class InterpreterError(Exception):
    """Base of every error the service reports to a client."""

    status_code = 500
    error_type = "server_error"
    code: str | None = None
    #: Seconds a client should wait before trying again (a Retry-After header), if any.
    retry_after_s: int | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class InvalidRequest(InterpreterError):
    status_code = 400
    error_type = "invalid_request_error"


class NotFound(InterpreterError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "not_found"


class SessionNotFound(NotFound):
    pass


class SessionExpired(NotFound):
    code = "container_expired"


class FileNotFound(NotFound):
    pass


class PayloadTooLarge(InterpreterError):
    status_code = 413
    error_type = "invalid_request_error"
    code = "file_too_large"


class RateLimited(InterpreterError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SessionLimitReached(RateLimited):
    code = "session_limit_reached"


class KernelBusy(InterpreterError):
    """The kernel is running code, or did not answer a quick question in time."""

    status_code = 409
    error_type = "invalid_request_error"
    code = "kernel_busy"


class SandboxError(InterpreterError):
    """The sandbox could not be created or reached."""

    status_code = 503
    error_type = "server_error"
    code = "sandbox_unavailable"
    retry_after_s = 5


class EngineUnavailable(SandboxError):
    """The sandboxes' engine (Docker) does not answer: it may be restarting."""


class StorageFull(InterpreterError):
    status_code = 507
    error_type = "invalid_request_error"
    code = "storage_full"


class StoreFull(InterpreterError):
    """The service's own data folder is full."""

    status_code = 507
    error_type = "server_error"
    code = "insufficient_storage"


class StoreUnavailable(InterpreterError):
    status_code = 503
    error_type = "server_error"
    code = "store_unavailable"
    retry_after_s = 5


class ServiceStopping(InterpreterError):
    """The service is shutting down."""

    status_code = 503
    error_type = "server_error"
    code = "server_shutting_down"
    retry_after_s = 5
