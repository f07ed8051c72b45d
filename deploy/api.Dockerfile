# The service (api), and the compose stack's helpers that drive the Docker engine with
# the same SDK (build_sandbox_image.py, janitor.py). Builds offline: the base image may
# be a local one and pip installs only from deploy/wheels/api/, which
# scripts/compose_images.sh fills on the host. Context: the repository root.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/wheels/api /tmp/wheelhouse
RUN test -f /tmp/wheelhouse/requirements.txt \
      || { echo "deploy/wheels/api is empty: run scripts/compose_images.sh first" >&2; exit 1; } \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheelhouse \
      -r /tmp/wheelhouse/requirements.txt
# The service imports model_runner's harmony and HTTP client, never a checkpoint.
COPY model_runner /app/model_runner
RUN rm -rf /app/model_runner/demo/checkpoint

FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app/model_runner /app/model_runner
COPY interpreter /app/interpreter
COPY deploy/*.py /app/deploy/
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1
WORKDIR /app
# Runs as root: it drives the host's Docker engine through the mounted socket, which is
# root on the host anyway, and chowns each sandbox's run folder to the sandbox's uid.
CMD ["python", "-m", "interpreter", "serve", "--cleanup-on-exit"]
