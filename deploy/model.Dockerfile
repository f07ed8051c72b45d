# The model runner in served mode. Builds offline like api.Dockerfile, from the wheelhouse
# named by WHEELS: deploy/wheels/model (torch's CPU build) or deploy/wheels/model-gpu
# (torch with CUDA, made by `scripts/compose_images.sh --gpu`). Context: the repo root.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
ARG WHEELS=deploy/wheels/model
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY ${WHEELS} /tmp/wheelhouse
RUN test -f /tmp/wheelhouse/requirements.txt \
      || { echo "${WHEELS} is empty: run scripts/compose_images.sh first" >&2; exit 1; } \
 && python3 -m venv /opt/venv \
 # --no-compile: bytecode for torch and transformers would add 300 MB to the image and
 # save about 8 s of each start, which the model's load and healthcheck dwarf anyway.
 && /opt/venv/bin/pip install --no-cache-dir --no-index --no-compile \
      --find-links /tmp/wheelhouse -r /tmp/wheelhouse/requirements.txt \
 # Neither pip nor torch's C++ headers and CMake files (they serve compiling extensions)
 # are of use to a runner.
 && /opt/venv/bin/pip uninstall -q -y pip \
 && rm -rf /opt/venv/lib/python3.11/site-packages/torch/include \
           /opt/venv/lib/python3.11/site-packages/torch/share/cmake

FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 1000 --user-group --create-home --home-dir /home/runner runner \
 && mkdir -p /var/lib/model-runner/hf \
 && chown runner:runner /var/lib/model-runner/hf
COPY --from=build /opt/venv /opt/venv
COPY model_runner /app/model_runner
COPY deploy/healthcheck.py /app/deploy/
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/var/lib/model-runner/hf
USER runner
WORKDIR /app
CMD ["python", "-m", "model_runner", "serve", "--model", "demo", "--host", "127.0.0.1", "--port", "8001"]
