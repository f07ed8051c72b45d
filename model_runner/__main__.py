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
    if not args.model.startswith(("http://", "https://")):
        options["cache_budget_bytes"] = int(args.cache_budget_mb * 1024**2)
        if args.device:
            options["device"] = args.device
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
    serve = commands.add_parser("serve", help="serve a model over HTTP (POST /v1/generate)")
    serve.add_argument("--model", required=True, help="demo, random:tiny, a folder, a hub id")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8001)
    serve.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    serve.add_argument("--name", default=None, help="the model name to report")
    serve.add_argument(
        "--cache-budget-mb", type=float, default=2048, help="prefix cache memory budget"
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
