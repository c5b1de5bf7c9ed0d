# syntax=docker/dockerfile:1
# support-service image: `docker build -t booking-system/support-service .` from the repository root.
# The builder turns the source into a wheel and installs it into /opt/venv; the runtime stage gets
# only that venv and runs as an unprivileged user. The embedded servers (the `dev` extra) are not
# installed: production talks to real PostgreSQL and Redis (see deploy/).

FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml setup.cfg README.m[d] ./
COPY app ./app
COPY rest ./rest
COPY sockets ./sockets
COPY grpc_server ./grpc_server
COPY support_stubs ./support_stubs
COPY sql ./sql
COPY static ./static
COPY protos ./protos
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install /wheels/support_service-*.whl

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 support \
 && useradd --system --uid 10001 --gid support --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin support
COPY --from=builder /opt/venv /opt/venv
WORKDIR /tmp
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8088 50061
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8088/health', timeout=3)"]
CMD ["support-service", "serve"]
