"""The compose stack's ``janitor``: when the stack stops, no sandbox is left behind.

The api ends its sessions when it stops (``--cleanup-on-exit``), but a killed api cannot:
its sandboxes run on, as the api's restart policy intends (the restarted api re-adopts
them). When the whole stack stops, though, nothing would ever re-adopt them. So this
process idles until it is told to stop, which compose does after stopping the api (the
api depends on it), and then removes every container labelled with the api's service
name, their run folders, and any run folder no container uses.

Stopping the janitor alone, with the api still up, ends the api's sandboxes too.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import docker
import docker.errors

LABEL_SERVICE = "code-interpreter.service"
LABEL_RUN_DIR = "code-interpreter.run-dir"


def clean(client: docker.DockerClient, service_name: str, run_root: Path) -> None:
    for container in client.containers.list(
        all=True, filters={"label": f"{LABEL_SERVICE}={service_name}"}
    ):
        try:
            container.remove(force=True)
            print(f"removed sandbox {container.name}", flush=True)
        except docker.errors.NotFound:
            pass
    # A folder without a container: one whose sandbox was just removed, or one made by
    # an api killed between making the folder and starting its container. Folders of
    # other services' sandboxes, should they share the root, stay.
    in_use = {
        container.labels.get(LABEL_RUN_DIR)
        for container in client.containers.list(all=True, filters={"label": LABEL_SERVICE})
    }
    if run_root.is_dir():
        for path in run_root.iterdir():
            # Each sandbox has a folder and, beside it, the host's connection file
            # (ID.kernel.json), kept out of the sandbox's reach.
            folder = path.with_name(path.name.removesuffix(".kernel.json"))
            if str(folder) in in_use:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def main() -> int:
    service_name = os.environ["INTERPRETER_SERVICE_NAME"]
    run_root = Path(os.environ["INTERPRETER_RUN_ROOT"])
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    print(f"watching over the sandboxes of {service_name}", flush=True)
    signal.sigwait(stop)
    client = docker.from_env()
    try:
        clean(client, service_name, run_root)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
