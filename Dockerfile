# syntax=docker/dockerfile:1
# One image for the reward service and the trainer.
#   docker build --target cpu -t rbr:cpu .   CPU torch from PyTorch's CPU wheel index (no CUDA download)
#   docker build --target gpu -t rbr:gpu .   CUDA torch (PyPI's default torch 2.13.0 wheel)
# Both bake in the embedded grader model (`rbr fetch-model`), so the cpu stack needs no model download.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS base
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 \
    RBR_CACHE_DIR=/opt/rbr-cache HF_HOME=/opt/hf-cache
RUN apt-get update && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app

# torch first and pinned, as scripts/setup.sh does: the project's own pin must find it installed.
FROM base AS torch-cpu
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

FROM base AS torch-gpu
RUN pip install torch==2.13.0

FROM base AS src
COPY pyproject.toml README.md ./
COPY propositions propositions
COPY reward_service reward_service
COPY rl_trainer rl_trainer
COPY data data

FROM torch-cpu AS cpu
COPY --from=src /app /app
RUN pip install -e ".[train]" && rbr fetch-model
EXPOSE 8000
CMD ["rbr", "serve", "--host", "0.0.0.0", "--port", "8000"]

FROM torch-gpu AS gpu
COPY --from=src /app /app
RUN pip install -e ".[train]" && rbr fetch-model
EXPOSE 8000
CMD ["rbr", "serve", "--host", "0.0.0.0", "--port", "8000"]
