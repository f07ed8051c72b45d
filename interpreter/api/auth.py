"""Optional bearer keys. A resource belongs to the key that created it; the owner is
stored as a hash of the key, never the key itself."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from interpreter.errors import InterpreterError


class Unauthorized(InterpreterError):
    status_code = 401
    error_type = "invalid_request_error"
    code = "invalid_api_key"


def owner_of_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


async def current_owner(request: Request) -> str | None:
    """FastAPI dependency: ``None`` when the server has no keys, else the key's owner id."""
    keys: frozenset[str] = request.app.state.api_keys
    if not keys:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>'.")
    if not any(hmac.compare_digest(token.strip(), key) for key in keys):
        raise Unauthorized("Incorrect API key provided.")
    return owner_of_key(token.strip())
