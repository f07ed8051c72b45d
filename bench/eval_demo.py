"""Accuracy of the demo model through the real Responses API and the real sandbox.

    make run   # the service, serving the demo model, at http://127.0.0.1:8000/v1
    python bench/eval_demo.py [--base-url URL] [--count 20] [--model demo]

Fresh prompts of every family come from ``EVAL_SEED``, a stream no training batch draws
from. Each goes through the official ``openai`` SDK exactly as a user's would: greedy
decoding (``temperature=0``), the CSV uploaded to a container first, the state family's
second question chained with ``previous_response_id``. A conversation is right when every
final answer quotes the real values (and the file family's file holds what was asked
for). Prints a JSON table of accuracy per family; it never fails on a number.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from typing import Any

from openai import OpenAI

from model_runner.demo import data


def _tool(container: str | None) -> list[Any]:
    return [{"type": "code_interpreter", "container": container or {"type": "auto"}}]


def _container_of(response: Any) -> str | None:
    for item in response.output:
        if item.type == "code_interpreter_call":
            return str(item.container_id)
    return None


def _file_text(client: OpenAI, container_id: str, path: str) -> str | None:
    for entry in client.containers.files.list(container_id):
        if entry.path == path:
            content = client.containers.files.content.retrieve(entry.id, container_id=container_id)
            return content.read().decode()
    return None


def run_conversation(
    client: OpenAI, model: str, conversation: data.Conversation, index: int
) -> tuple[bool, list[dict[str, Any]]]:
    """Send every turn; return whether all were right and a trace for failures.

    The conversation's container is deleted afterwards: the service caps live ones.
    """
    container: str | None = None
    try:
        return _run_turns(client, model, conversation, index, container)
    finally:
        for live in _created.pop(index, []):
            client.containers.delete(live)


_created: dict[int, list[str]] = {}


def _run_turns(
    client: OpenAI, model: str, conversation: data.Conversation, index: int, container: str | None
) -> tuple[bool, list[dict[str, Any]]]:
    created = _created.setdefault(index, [])
    if conversation.files:
        container = client.containers.create(name=f"eval-demo-{index}").id
        created.append(container)
        for name, text in conversation.files.items():
            client.containers.files.create(container, file=(name, text.encode()))
    previous: str | None = None
    trace: list[dict[str, Any]] = []
    ok = True
    for turn in conversation.turns:
        response = client.responses.create(
            model=model,
            input=turn.user,
            instructions=conversation.instructions,
            tools=_tool(container),
            temperature=0,
            reasoning={"effort": conversation.system.reasoning_effort},
            previous_response_id=previous,
            include=["code_interpreter_call.outputs"],
        )
        previous = response.id
        if container is None and (container := _container_of(response)) is not None:
            created.append(container)
        answer = response.output_text
        right = all(expected in answer for expected in turn.expected)
        if right and conversation.family == "file" and container is not None:
            text = _file_text(client, container, turn.expected[0])
            right = text == data.file_contents(conversation)
        ok = ok and right
        trace.append(
            {
                "user": turn.user,
                "expected": turn.expected,
                "answer": answer,
                "code": [i.code for i in response.output if i.type == "code_interpreter_call"],
            }
        )
    return ok, trace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--api-key", default="unused")
    parser.add_argument("--model", default="demo")
    parser.add_argument("--count", type=int, default=20, help="conversations per family")
    parser.add_argument("--seed", type=int, default=data.EVAL_SEED)
    parser.add_argument("--families", nargs="*", default=list(data.FAMILIES))
    parser.add_argument("--verbose", action="store_true", help="print failures to stderr")
    args = parser.parse_args()

    client = OpenAI(base_url=args.base_url, api_key=args.api_key)
    conversations = data.conversations(args.seed, args.count * len(args.families), args.families)
    right: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    started = time.monotonic()
    for index, conversation in enumerate(conversations):
        ok, trace = run_conversation(client, args.model, conversation, index)
        total[conversation.family] += 1
        right[conversation.family] += ok
        if args.verbose and not ok:
            print(json.dumps({"family": conversation.family, "turns": trace}), file=sys.stderr)
    table = {
        family: {"accuracy": right[family] / total[family], "right": right[family], "n": n}
        for family, n in total.items()
    }
    print(
        json.dumps(
            {
                "mode": "Responses API + real sandbox",
                "base_url": args.base_url,
                "model": args.model,
                "seed": args.seed,
                "families": table,
                "seconds": round(time.monotonic() - started, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
