# flux-playground: the page (and its API and MCP server) in one container. docs/deploying.md.
#
#   docker build -t flux-playground .
#   docker run -p 7860:7860 -v flux-data:/data --env-file .env flux-playground
#
# Without a provider key it runs in demo mode against the built-in emulator.

# --- the wheel, built from the source alone (the runtime image gets no source tree) ---------------
FROM python:3.11.14-slim-bookworm AS wheel
WORKDIR /src
# The build backend pyproject.toml pins; --no-build-isolation then uses it as installed here.
RUN pip install --no-cache-dir hatchling==1.33.0
COPY pyproject.toml ./
COPY flux_playground ./flux_playground
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

# --- the runtime -----------------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm

# GRADIO_SERVER_NAME/_PORT: where the page listens (every address inside the container; publish the
# port you want). FLUX_PLAYGROUND_DATA_DIR: history and the spend ledger, on the volume below.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    FLUX_PLAYGROUND_DATA_DIR=/data

# A user of its own, no login shell, no password; it owns only the data directory and its home.
RUN useradd --no-log-init --create-home --uid 10001 --user-group --shell /usr/sbin/nologin flux \
    && mkdir /data \
    && chown flux:flux /data

# The dependencies first (the same pins the Space installs), so a code change rebuilds one layer.
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt

COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-deps --no-index /tmp/wheels/*.whl && rm -r /tmp/wheels

# Numeric, so a runtime that forbids root (Kubernetes runAsNonRoot) can tell without the passwd file.
USER 10001:10001
# Gradio keeps its temporary files under the working directory's .gradio and /tmp: the user's own.
WORKDIR /home/flux
VOLUME ["/data"]
EXPOSE 7860

# /robots.txt through the gate: no session, no config built, no per-person limit (healthcheck.py).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["flux-playground", "healthcheck"]

# No arguments: the page, exactly as `python app.py` runs it on a Space.
CMD ["flux-playground"]
