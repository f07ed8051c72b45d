"""The compose stack's healthchecks: each really does the service's work, on a small scale.

    python deploy/healthcheck.py api http://127.0.0.1:8000     runs 1+1 in a sandbox
    python deploy/healthcheck.py model http://127.0.0.1:8001   generates one token

Standard library only: the same file runs in the api and the model image. Exit status 0
means healthy; otherwise the reason goes to stdout, where ``docker inspect`` shows it.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 60.0

# <|start|> in o200k_harmony: a token every gpt-oss-style model (and the demo model's
# token map) knows, the first of every harmony message.
HARMONY_START = 200006


def check_api(base_url: str) -> str | None:
    # /readyz answers 200 only once 1+1 ran in a sandbox and gave 2.
    with urllib.request.urlopen(f"{base_url}/readyz", timeout=TIMEOUT_S) as response:
        body = json.load(response)
    return None if body.get("status") == "ready" else f"/readyz said {body}"


def check_model(base_url: str) -> str | None:
    request = urllib.request.Request(
        f"{base_url}/v1/generate",
        data=json.dumps(
            {"prompt_tokens": [HARMONY_START], "max_tokens": 1, "temperature": 0.0}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        lines = [json.loads(line) for line in response if line.strip()]
    tokens = [line["token"] for line in lines if "token" in line]
    if not lines or not lines[-1].get("done") or len(tokens) != 1:
        return f"generating one token gave {lines}"
    return None


def main(argv: list[str]) -> int:
    checks = {"api": check_api, "model": check_model}
    if len(argv) != 2 or argv[0] not in checks:
        print(f"usage: healthcheck.py {{{','.join(checks)}}} BASE_URL")
        return 2
    try:
        problem = checks[argv[0]](argv[1].rstrip("/"))
    except urllib.error.HTTPError as exc:
        problem = f"HTTP {exc.code}: {exc.read()[:500]!r}"
    except (OSError, ValueError) as exc:  # refused, timed out, not JSON
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        print(problem)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
