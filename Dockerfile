# syntax=docker/dockerfile:1
# The fraudstream application image: one image, one entry point; docker-compose.yml picks
# the command (score, feedback, produce, topics create, ...).
#
#   docker build -t fraudstream:local .
#   docker run --rm fraudstream:local --help

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a virtualenv with the pinned dependencies and the package ----------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The lock alone first, so this (slow, large) layer is rebuilt only when the pins change.
COPY requirements.lock ./
RUN pip install -r requirements.lock
# No README.md: the package builds without it, and the image has no use for it.
COPY pyproject.toml ./
COPY schemas ./schemas
COPY operators ./operators
COPY streams ./streams
COPY models ./models
# --no-deps: every dependency is already installed at its locked version.
RUN pip install --no-deps .

# --- runtime: the virtualenv on a clean base, run as an unprivileged user ------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FRAUD_STATE_DIR=/var/lib/fraudstream
# A fixed uid/gid so volume ownership is predictable; the state directory exists in the
# image so a fresh named volume mounted there inherits the ownership.
RUN groupadd --system --gid 10001 fraudstream \
    && useradd --system --uid 10001 --gid fraudstream --create-home --no-log-init fraudstream \
    && mkdir -p /var/lib/fraudstream \
    && chown fraudstream:fraudstream /var/lib/fraudstream
COPY --from=build /opt/venv /opt/venv
USER fraudstream
WORKDIR /home/fraudstream
# Metrics endpoints of the scorer and the feedback service.
EXPOSE 9100 9200
ENTRYPOINT ["fraudstream"]
CMD ["--help"]
