# The wf consumer: `docker run -e WF_DATABASE_URL=... -e WF_FUNCTIONS_URL=... -e WF_FUNCTIONS_TOKEN=... wf`
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY consumer consumer
COPY sql sql
COPY templates templates
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin wf
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER wf
ENV PYTHONUNBUFFERED=1 \
    WF_METRICS_PORT=9090
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request, sys; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('WF_METRICS_PORT', '9090')}/healthz\", timeout=4); sys.exit(0)"]
ENTRYPOINT ["wf", "worker"]
