# a2e-bridge service image. Build: docker build -t a2e-bridge .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BRIDGE_HOST=0.0.0.0 \
    BRIDGE_PORT=8000 \
    BRIDGE_DB=/data/a2e-bridge.db

RUN useradd --create-home --uid 10001 bridge \
    && mkdir /data && chown bridge /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bridge ./bridge
COPY clients/js ./clients/js
RUN rm -f bridge/static/bridge.mjs && cp clients/js/bridge.mjs bridge/static/bridge.mjs \
    && pip install . && rm -rf /root/.cache

USER bridge
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"BRIDGE_PORT\",\"8000\")}/healthz', timeout=2)"
# SIGTERM makes the bridge leave every open room before it exits (BRIDGE_SHUTDOWN_TIMEOUT).
STOPSIGNAL SIGTERM
CMD ["a2e-bridge", "serve"]
