# The two commands: `make run` and `make test`. Both do all set-up first (idempotent).
PY := .venv/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run test lint format bench clean

setup:
	@bash scripts/setup.sh

run: setup
	$(PY) -m interpreter serve --host $(HOST) --port $(PORT)

# The sandbox tests run under runc and under gVisor's runsc: set-up registers runsc.
test: export SETUP_RUNSC = 1
test: setup
	@SETUP_BROWSER=1 bash scripts/setup_browser.sh
	@bash scripts/build_llama_server.sh >/dev/null
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

format: setup
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

bench: setup
	$(PY) bench/sessions.py

clean:
	-docker ps -aq --filter label=code-interpreter.service | xargs -r docker rm -f
	rm -rf .data .build
