"""Accuracy of the demo model through the real Responses API and the real sandbox.

    make run   # the service, serving the demo model, at http://127.0.0.1:8000/v1
    python bench/eval_demo.py [--base-url URL] [--count 40] [--long-count 40] [--model demo]

The same three sets as ``python -m model_runner.demo.evaluate`` (``evaluation_set``: the
held-out phrasings and out-of-scope prompts, numbers from ``EVAL_SEED``), each sent
through the official ``openai`` SDK as a user's would: greedy decoding
(``temperature=0``), one container per conversation with its CSVs uploaded first, every
later turn chained with ``previous_response_id``, and hand-written cells run in the
container (``POST /v1/containers/{id}/execute``) and sent before the user's message as
``code_interpreter_call`` input items, as the chat page sends them. A turn is right when
its answer quotes the real values (the file family's file holds what was asked for, the
plot family's call returned an image); an out-of-scope turn when its answer is exactly
the fixed one and no code ran. Prints a JSON table; it never fails on a number.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from openai import OpenAI

from model_runner.demo import data
from model_runner.demo.evaluate import evaluation_set


def _file_text(client: OpenAI, container_id: str, name: str) -> str | None:
    for entry in client.containers.files.list(container_id):
        if entry.path == f"/mnt/data/{name}":
            content = client.containers.files.content.retrieve(entry.id, container_id=container_id)
            return content.read().decode()
    return None


def _run_cell(client: OpenAI, container_id: str, code: str) -> str:
    """Run a hand-written cell in the container; its logs, as the page shows them."""
    result: Any = client.post(
        f"/containers/{container_id}/execute", body={"code": code}, cast_to=object
    )
    logs = []
    for output in result["outputs"]:
        if output["type"] == "stream":
            logs.append(output["text"])
        elif output["type"] in ("result", "display") and "text/plain" in output["data"]:
            logs.append(output["data"]["text/plain"] + "\n")
        elif output["type"] == "error":
            logs.append(f"{output['ename']}: {output['evalue']}\n")
    return "".join(logs)


def run_conversation(
    client: OpenAI, model: str, conversation: data.Conversation, name: str, truncation: str
) -> list[tuple[bool, dict[str, Any]]]:
    """Send every turn; per turn, whether it was right and a trace."""
    container = client.containers.create(name=name).id
    try:
        for filename, text in conversation.files.items():
            client.containers.files.create(container, file=(filename, text.encode()))
        tools: Any = [{"type": "code_interpreter", "container": container}]
        previous: str | None = None
        results = []
        for index, turn in enumerate(conversation.turns):
            items: list[Any] = []
            for number, cell in enumerate(turn.cells):
                logs = _run_cell(client, container, cell.code)
                items.append(
                    {
                        "type": "code_interpreter_call",
                        "id": f"ci_hand_{index}_{number}",
                        "code": cell.code,
                        "container_id": container,
                        "status": "completed",
                        "outputs": [{"type": "logs", "logs": logs}],
                    }
                )
            items.append({"role": "user", "content": turn.user})
            response = client.responses.create(
                model=model,
                input=items,
                instructions=conversation.instructions,
                tools=tools,
                temperature=0,
                reasoning={"effort": conversation.system.reasoning_effort},
                previous_response_id=previous,
                include=["code_interpreter_call.outputs"],
                truncation=truncation,  # type: ignore[arg-type]
            )
            previous = response.id
            calls = [i for i in response.output if i.type == "code_interpreter_call"]
            answer = response.output_text
            if turn.family == data.OUT_OF_SCOPE:
                right = not calls and answer.strip() == data.CANNOT_DO
            else:
                right = bool(calls) and all(expected in answer for expected in turn.expected)
                if right and turn.file is not None:
                    right = _file_text(client, container, turn.file[0]) == turn.file[1]
                if right and turn.family == "plot":
                    right = any(o.type == "image" for c in calls for o in c.outputs or [])
            results.append(
                (
                    right,
                    {
                        "position": index + 1,
                        "ok": right,
                        "family": turn.family,
                        "user": turn.user,
                        "expected": turn.expected,
                        "code": [c.code for c in calls],
                        "answer": answer,
                        "status": response.status,
                    },
                )
            )
        return results
    finally:
        client.containers.delete(container)


def _table(right: dict[str, int], total: dict[str, int]) -> dict[str, dict[str, float]]:
    return {
        key: {"accuracy": round(right[key] / n, 4), "right": right[key], "n": n}
        for key, n in total.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--api-key", default="unused")
    parser.add_argument("--model", default="demo")
    parser.add_argument("--count", type=int, default=40, help="conversations per family")
    parser.add_argument("--long-count", type=int, default=40)
    parser.add_argument("--long-turns", type=int, default=10)
    parser.add_argument("--seed", type=int, default=data.EVAL_SEED)
    parser.add_argument("--truncation", choices=("auto", "disabled"), default="auto")
    parser.add_argument("--failures", type=Path, help="write failed conversations here (JSONL)")
    args = parser.parse_args()

    client = OpenAI(base_url=args.base_url, api_key=args.api_key, timeout=600)
    sets = evaluation_set(args.seed, args.count, args.long_count, args.long_turns)
    log = args.failures.open("w") if args.failures else None
    started = time.monotonic()
    report: dict[str, Any] = {}
    groups = (("families", sets.families), ("long", sets.long), ("oos", sets.out_of_scope))
    tallies: dict[str, tuple[dict[str, int], dict[str, int]]] = {
        key: (defaultdict(int), defaultdict(int))
        for key in ("families", "long_by_position", "long_by_family", "out_of_scope")
    }
    for group, conversations in groups:
        for index, conversation in enumerate(conversations):
            results = run_conversation(
                client, args.model, conversation, f"eval-demo-{group}-{index}", args.truncation
            )
            oks = [ok for ok, _ in results]
            if group == "families":
                right, total = tallies["families"]
                total[conversation.family] += 1
                right[conversation.family] += all(oks)
            elif group == "long":
                for ok, trace in results:
                    for key, value in (("long_by_position", str(trace["position"])),
                                       ("long_by_family", trace["family"])):  # fmt: skip
                        right, total = tallies[key]
                        total[value] += 1
                        right[value] += ok
            else:
                right, total = tallies["out_of_scope"]
                total["out_of_scope"] += 1
                right["out_of_scope"] += oks[0]
            if log and not all(oks):
                traces = [trace for _, trace in results]
                print(json.dumps({"set": group, "turns": traces}), file=log, flush=True)
    for key, (right, total) in tallies.items():
        if total:
            report[key] = _table(right, total)
    if "out_of_scope" in report:
        report["out_of_scope"] = report["out_of_scope"]["out_of_scope"]
    if log:
        log.close()
    print(
        json.dumps(
            {
                "mode": "Responses API + real sandbox",
                "base_url": args.base_url,
                "model": args.model,
                "seed": args.seed,
                "truncation": args.truncation,
                **report,
                "seconds": round(time.monotonic() - started, 1),
            },
            indent=2,
        ),
        file=sys.stdout,
    )


if __name__ == "__main__":
    main()
