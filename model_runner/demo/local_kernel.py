"""A stand-in for the sandbox's kernel, for measuring the demo model offline.

Run as a child process by ``model_runner.demo.evaluate`` with any Python that has numpy,
pandas and matplotlib (the sandbox image's stack). It reads one JSON request per line
(``{"code": ...}``), runs the code in one namespace that lives as long as the process
(state across calls, like a Jupyter kernel), and answers one JSON line with what the
sandbox would report: stdout, the number of figures shown, the error as "Name: value",
and the files the code created under ``/mnt/data``.

``/mnt/data`` is a temporary folder here: the code's mentions of it are rewritten, and
reported paths are written back. Imports only the standard library at start, so it runs
under an interpreter without the project installed.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import sys

MNT = "/mnt/data"


def _files(root: str) -> dict[str, float]:
    return {name: os.stat(os.path.join(root, name)).st_mtime_ns for name in os.listdir(root)}


def _run(code: str, namespace: dict[str, object], root: str) -> dict[str, object]:
    before = _files(root)
    stdout = io.StringIO()
    error = None
    code = code.replace(MNT, root)
    try:
        tree = ast.parse(code)
        # Like Jupyter: the value of a final bare expression is shown.
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        assert last is None or isinstance(last, ast.Expr)
        with contextlib.redirect_stdout(stdout):
            exec(compile(tree, "<cell>", "exec"), namespace)
            if last is not None:
                value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)
                if value is not None:
                    print(repr(value))
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}".replace(root, MNT)
    images = 0
    if "matplotlib.pyplot" in sys.modules:
        plt = sys.modules["matplotlib.pyplot"]
        # The inline backend shows every open figure at the end of a cell, then closes it.
        images = len(plt.get_fignums())
        plt.close("all")
    after = _files(root)
    new_files = sorted(f"{MNT}/{n}" for n, t in after.items() if before.get(n) != t)
    return {
        "text": stdout.getvalue().replace(root, MNT),
        "images": images,
        "error": error,
        "new_files": new_files,
    }


def main() -> None:
    root = sys.argv[1]
    # The sandbox's kernel starts in /mnt/data: relative paths land there.
    os.chdir(root)
    os.environ.setdefault("MPLBACKEND", "Agg")
    import warnings

    # Agg warns that plt.show() cannot show anything; the sandbox prints no such thing.
    warnings.filterwarnings("ignore")
    namespace: dict[str, object] = {"__name__": "__main__"}
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.write(json.dumps(_run(request["code"], namespace, root)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
