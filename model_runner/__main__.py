"""``python -m model_runner serve --model SPEC``: serve a model over HTTP."""

from __future__ import annotations

import argparse
import logging
import sys

from model_runner.errors import ModelRunnerError
from model_runner.loading import load_generator


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from model_runner.server import create_app

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    options: dict[str, object] = {}
    if "://" not in args.model:  # a model in this process, not a served one
        if args.cache_budget_mb is not None:
            options["cache_budget_bytes"] = int(args.cache_budget_mb * 1024**2)
        if args.device:
            options["device"] = args.device
        if args.max_batch:
            options["max_batch"] = args.max_batch
        if args.context_length:
            options["context_length"] = args.context_length
    if args.name:
        options["name"] = args.name
    try:
        generator = load_generator(args.model, **options)
    except ModelRunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger(__name__).info("serving %s", generator.name)
    uvicorn.run(create_app(generator), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_runner")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="serve a model over HTTP (native, vLLM and SGLang token APIs)"
    )
    serve.add_argument("--model", required=True, help="demo, random:tiny, a folder, a hub id")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8001)
    serve.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    serve.add_argument("--name", default=None, help="the model name to report")
    serve.add_argument(
        "--cache-budget-mb",
        type=float,
        default=None,
        help="key/value slot memory (default: 512 on a CPU, half the free GPU memory)",
    )
    serve.add_argument("--max-batch", type=int, default=0, help="generations per step")
    serve.add_argument(
        "--context-length", type=int, default=0, help="tokens a slot holds (default 8192)"
    )
    serve.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)"
    )
    serve.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    if args.command == "serve":
        return _serve(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
