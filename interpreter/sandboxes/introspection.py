"""Asking a kernel about its code and its namespace: completions, help, variables.

Completions and help are the kernel's own ``complete_request`` and ``inspect_request``.
The variables come from a *silent* execution (no history, no execution count, no
output) whose only result is a ``user_expressions`` value: the describing code runs in
a private namespace of its own, so it leaves no name behind in the user's.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from typing import Any

# Whatever the kernel is doing, a person pressing Tab should not wait long.
COMPLETE_TIMEOUT_S = 5.0
INSPECT_TIMEOUT_S = 5.0
# Describing the namespace touches every variable (a property named ``shape`` may run
# user code), so this gets a little longer, and an interrupt when it runs out.
VARIABLES_TIMEOUT_S = 10.0
MAX_VARIABLES = 500
# Longest value preview of a scalar or a string.
MAX_PREVIEW_CHARS = 80

# Runs inside the kernel, in a fresh dict holding ``namespace`` (the user's globals).
# Reads only cheap facts: a type's name, a ``shape`` tuple, ``len`` of built-in
# containers, a ``dtype``, and the repr of scalars and strings (cut short).
_DESCRIBE = f"""
import json, types

HIDDEN = {{"In", "Out", "get_ipython", "exit", "quit", "open"}}
SCALARS = (bool, int, float, complex, type(None))
SIZED = (str, bytes, bytearray, list, tuple, dict, set, frozenset, range)

def describe(name, value):
    kind = type(value)
    entry = {{"name": name, "type": kind.__name__, "module": kind.__module__,
              "shape": None, "length": None, "dtype": None, "value": None}}
    try:
        if not isinstance(value, type):
            shape = getattr(value, "shape", None)
            if isinstance(shape, tuple) and all(isinstance(n, int) for n in shape):
                entry["shape"] = list(shape)
            dtype = getattr(value, "dtype", None)
            if dtype is not None and type(dtype).__module__.split(".")[0] in ("numpy", "pandas"):
                entry["dtype"] = str(dtype)
        if isinstance(value, SIZED):
            entry["length"] = len(value)
        if isinstance(value, SCALARS):
            entry["value"] = repr(value)[:{MAX_PREVIEW_CHARS}]
        elif isinstance(value, str):
            entry["value"] = repr(value[:{MAX_PREVIEW_CHARS}])
        elif entry["shape"] == [] and kind.__module__ == "numpy":
            entry["value"] = str(value)[:{MAX_PREVIEW_CHARS}]
    except Exception:
        pass
    return entry

names = sorted(
    name for name, value in list(namespace.items())
    if not name.startswith("_") and name not in HIDDEN
    and not isinstance(value, types.ModuleType)
)
result = json.dumps({{
    "variables": [describe(name, namespace[name]) for name in names[:{MAX_VARIABLES}]],
    "truncated": len(names) > {MAX_VARIABLES},
}})
"""
VARIABLES_EXPRESSION = (
    f"(lambda scope: (exec({_DESCRIBE!r}, scope), scope['result'])[1])({{'namespace': globals()}})"
)


@dataclass(frozen=True)
class Completion:
    """What may replace ``code[cursor_start:cursor_end]``; ``types`` (one per match,
    None where the kernel did not say) are jedi's kinds: function, module, instance ..."""

    matches: list[str]
    cursor_start: int
    cursor_end: int
    types: list[str | None]


@dataclass(frozen=True)
class Inspection:
    """The kernel's help for the name at the cursor, by MIME type (``text/plain`` holds
    ANSI colour codes, as IPython writes it)."""

    found: bool
    data: dict[str, str]


@dataclass(frozen=True)
class Variable:
    name: str
    type: str
    module: str
    shape: list[int] | None
    length: int | None
    dtype: str | None
    value: str | None


@dataclass(frozen=True)
class Namespace:
    """The user's variables, and the execution count of the last cell run (which the
    silent execution that listed them did not change)."""

    variables: list[Variable]
    truncated: bool
    execution_count: int | None


def completer_setup_content() -> dict[str, Any]:
    """IPython completes with jedi by default, which infers types statically: its first
    answer in a fresh kernel took 13 s in a one-CPU sandbox, and it cannot see a
    DataFrame's columns. IPython's own completer reads the live objects instead (names,
    attributes, dict keys and columns, paths) in milliseconds."""
    return {
        "code": "get_ipython().Completer.use_jedi = False",
        "silent": True,
        "store_history": False,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": False,
    }


def complete_content(code: str, cursor_pos: int) -> dict[str, Any]:
    return {"code": code, "cursor_pos": cursor_pos}


def inspect_content(code: str, cursor_pos: int, detail_level: int) -> dict[str, Any]:
    return {"code": code, "cursor_pos": cursor_pos, "detail_level": detail_level}


def variables_content() -> dict[str, Any]:
    return {
        "code": "",
        "silent": True,
        "store_history": False,
        "user_expressions": {"namespace": VARIABLES_EXPRESSION},
        "allow_stdin": False,
        "stop_on_error": False,
    }


def parse_completion(reply: dict[str, Any], code: str, cursor_pos: int) -> Completion:
    if reply.get("status") != "ok":
        return Completion([], cursor_pos, cursor_pos, [])
    matches = [str(m) for m in reply.get("matches") or []]
    kinds: dict[str, str] = {}
    for entry in (reply.get("metadata") or {}).get("_jupyter_types_experimental") or []:
        # jedi says "<unknown>" when it does not know: that is no kind.
        if (
            isinstance(entry, dict)
            and "text" in entry
            and entry.get("type") not in (None, "", "<unknown>")
        ):
            kinds.setdefault(str(entry["text"]), str(entry["type"]))
    start = reply.get("cursor_start")
    end = reply.get("cursor_end")
    return Completion(
        matches=matches,
        cursor_start=start if isinstance(start, int) else cursor_pos,
        cursor_end=end if isinstance(end, int) else cursor_pos,
        types=[kinds.get(m) for m in matches],
    )


def parse_inspection(reply: dict[str, Any]) -> Inspection:
    if reply.get("status") != "ok" or not reply.get("found"):
        return Inspection(False, {})
    data = reply.get("data") or {}
    return Inspection(True, {str(k): str(v) for k, v in data.items() if isinstance(v, str)})


class NamespaceUnreadable(ValueError):
    """The kernel answered, but not with a readable description of its namespace."""


def parse_namespace(reply: dict[str, Any]) -> Namespace:
    value = (reply.get("user_expressions") or {}).get("namespace") or {}
    if reply.get("status") != "ok" or value.get("status") != "ok":
        failed = value if value.get("status") == "error" else reply
        raise NamespaceUnreadable(f"{failed.get('ename', 'Error')}: {failed.get('evalue', '')}")
    try:
        # The kernel shows the JSON text as a Python string literal (its repr).
        text = ast.literal_eval(value["data"]["text/plain"])
        raw = json.loads(text)
        variables = [Variable(**entry) for entry in raw["variables"]]
    except (KeyError, TypeError, ValueError, SyntaxError) as exc:
        raise NamespaceUnreadable(f"an unexpected answer ({exc})") from exc
    count = reply.get("execution_count")
    return Namespace(
        variables=variables,
        truncated=bool(raw.get("truncated")),
        execution_count=count if isinstance(count, int) else None,
    )
