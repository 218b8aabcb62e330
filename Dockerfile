# syntax=docker/dockerfile:1
# Isthmus gateway image: the wheel is built in the first stage; the second installs it alone and runs as a non-root
# user. Build: docker build -t isthmus .   Run: see docs/deploy.md (config at /etc/isthmus/config.yaml).

FROM python:3.12-slim-bookworm AS build
WORKDIR /src
RUN pip install --no-cache-dir build==1.2.2.post1
COPY pyproject.toml README.md ./
COPY isthmus ./isthmus
COPY toolpolicy ./toolpolicy
COPY mcp_hub ./mcp_hub
COPY llm_proxy ./llm_proxy
RUN python -m build --wheel --outdir /dist

FROM python:3.12-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    ISTHMUS_CONFIG=/etc/isthmus/config.yaml
COPY --from=build /dist/*.whl /tmp/wheels/
RUN pip install --no-cache-dir /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels \
    && groupadd --system --gid 10001 isthmus \
    && useradd --system --uid 10001 --gid isthmus --home-dir /home/isthmus --create-home --shell /usr/sbin/nologin isthmus
WORKDIR /home/isthmus
USER 10001:10001
EXPOSE 8080
# SIGTERM drains (docs/deploy.md); give `docker stop --time` more than server.drain_timeout.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2).status != 200)"]
ENTRYPOINT ["isthmus"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
