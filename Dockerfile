# syntax=docker/dockerfile:1
# syncbus image: one image for every process (`syncbus api`, `syncbus worker`, `syncbus migrate`).
# Every dependency ships a manylinux wheel, so neither stage needs a compiler.
ARG PYTHON_IMAGE=python:3.11-slim

# --- build: install the project and its runtime dependencies into a virtualenv -------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/syncbus
ENV PATH=/opt/syncbus/bin:$PATH
WORKDIR /src
# .dockerignore keeps the context to what `pip install .` needs (no .git, tests, .env files).
COPY . .
RUN pip install .

# --- runtime: the virtualenv only, run by an unprivileged user ---------------------------------
FROM ${PYTHON_IMAGE}
# The git domain runs git (and ssh for ssh:// repositories) in the worker.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/syncbus/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 syncbus \
 && useradd --system --uid 10001 --gid syncbus --home-dir /var/lib/syncbus --create-home \
    --shell /usr/sbin/nologin syncbus
COPY --from=build /opt/syncbus /opt/syncbus
# A working directory the unprivileged user may write to (Faust, the git domain's local
# copy under .syncbus/git, temporary files).
WORKDIR /var/lib/syncbus
USER 10001:10001
EXPOSE 8000
CMD ["syncbus", "api", "--host", "0.0.0.0", "--port", "8000"]
