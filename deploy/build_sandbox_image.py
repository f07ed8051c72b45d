"""The compose stack's ``sandbox-image`` service: build the sandbox image, then exit.

Runs in the api image, with the host's Docker socket, ``sandbox_image/`` mounted at
``SANDBOX_SOURCE`` and its wheelhouse (from scripts/compose_images.sh) at
``SANDBOX_WHEELS``. The image is tagged by the content of ``sandbox_image/``, exactly as
``make setup`` tags it (so the two share one image and an unchanged folder is never
rebuilt), and also as ``INTERPRETER_SANDBOX_IMAGE``, the name the api starts sandboxes
from: compose cannot compute the content tag, so the api is given a fixed name instead.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import docker
import docker.errors

from interpreter.sandboxes.image import REPOSITORY, content_hash


def main() -> int:
    source = Path(os.environ.get("SANDBOX_SOURCE", "/src/sandbox_image"))
    wheels = Path(os.environ.get("SANDBOX_WHEELS", "/src/wheels"))
    alias = os.environ["INTERPRETER_SANDBOX_IMAGE"]
    base_image = os.environ.get("BASE_IMAGE", "debian:bookworm-slim")
    if not (source / "Dockerfile").is_file():
        return fail(f"no sandbox_image/ at {source}: is it mounted?")
    tag = f"{REPOSITORY}:{content_hash(source)}"
    client = docker.from_env()
    try:
        client.images.get(tag)
        print(f"{tag} is up to date")
    except docker.errors.ImageNotFound:
        problem = build(client, source, wheels, tag, base_image)
        if problem:
            return fail(problem)
    repository, _, name = alias.rpartition(":")
    if alias != tag:
        client.images.get(tag).tag(repository, name)
        print(f"tagged {tag} as {alias}")
    return 0


def build(
    client: docker.DockerClient, source: Path, wheels: Path, tag: str, base_image: str
) -> str | None:
    requirements = (source / "requirements.txt").read_bytes()
    if (wheels / "requirements.txt").read_bytes() != requirements:
        # A changed requirements.txt needs new wheels, which only the host can download.
        return (
            f"the sandbox wheelhouse does not match {source}/requirements.txt: "
            "run scripts/compose_images.sh"
        )
    print(f"building {tag}")
    with tempfile.TemporaryDirectory() as context:
        # The same context scripts/setup.sh gives it: the folder plus wheelhouse/.
        shutil.copytree(source, context, dirs_exist_ok=True)
        shutil.copytree(wheels, Path(context) / "wheelhouse")
        try:
            client.images.build(
                path=context,
                tag=tag,
                # The engine may have no bridge network; apt in the build needs one.
                network_mode="host",
                buildargs={"BASE_IMAGE": base_image},
                rm=True,
            )
        except docker.errors.BuildError as exc:
            log = "".join(str(line.get("stream", line.get("error", ""))) for line in exc.build_log)
            return f"the sandbox image did not build: {exc}\n{log[-4000:]}"
    return None


def fail(message: str) -> int:
    print(f"sandbox-image: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
