# The wf consumer: `docker run -e WF_DATABASE_URL=... -e WF_FUNCTIONS_URL=... -e WF_FUNCTIONS_TOKEN=... wf`
# Build: `docker build -t wf .`; on a machine without a registry (this project's CI):
# scripts/build-container, FROM a stand-in base (README, "The container").
# Stop it with more time than the worker's --grace (30 s): `docker run --stop-timeout 45`,
# compose `stop_grace_period: 45s`, Kubernetes `terminationGracePeriodSeconds` (deploy/worker.yaml: 60).
ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS build
# a machine whose package index or HTTPS needs its own settings passes them here; unset, pip reads
# PyPI as usual. Build arguments stay in this stage: the image below never sees them.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_CERT
WORKDIR /src
RUN python -m venv /opt/wf
COPY pyproject.toml README.md ./
COPY consumer consumer
COPY sql sql
COPY templates templates
# wf and its dependencies into the venv, which the image copies whole; pip itself stays behind
RUN /opt/wf/bin/pip install --no-cache-dir --disable-pip-version-check . \
 && /opt/wf/bin/python -m pip uninstall --yes --quiet pip setuptools

FROM ${PYTHON_IMAGE}
# uid and gid 10001, and USER by number: Kubernetes' runAsNonRoot can only check a numeric user
RUN groupadd --gid 10001 wf \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin wf
COPY --from=build /opt/wf /opt/wf
ENV PATH=/opt/wf/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    WF_METRICS_PORT=9090
USER 10001:10001
EXPOSE 9090
# /healthz on the port the worker serves it on: its --metrics-port, else its WF_METRICS_PORT
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/opt/wf/bin/python", "-m", "wf.healthcheck"]
ENTRYPOINT ["wf", "worker"]
