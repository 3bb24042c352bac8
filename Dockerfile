# fasciculation-cds: the CDS Hooks service as a container (see docs/operations.md).
#
#   docker build -t fasciculation-cds .
#   docker run --read-only --stop-timeout 30 -v cds-data:/var/lib/fasciculation-cds -p 8080:8080 \
#     -e CDS_PUBLIC_BASE_URL=https://cds.hospital.example -e CDS_PATIENT_KEY_SECRET=... \
#     -e CDS_TRUSTED_CLIENTS_FILE=/etc/fasciculation-cds/trusted-clients.yaml \
#     -v "$PWD/trusted-clients.yaml:/etc/fasciculation-cds/trusted-clients.yaml:ro" fasciculation-cds
#
# Runs as a non-root user, in production mode, on a read-only root file system: the only
# path it writes is the volume /var/lib/fasciculation-cds. Needs nothing from the internet at
# run time. Hospitals that mirror images should pin the base by digest (PYTHON_IMAGE=...@sha256:...).
# `--stop-timeout 30` (compose: stop_grace_period): the engines' default of 10 s would kill calls
# that gunicorn is still finishing (it allows them 20 s after SIGTERM).
#
# Building needs a Python package index. Behind a hospital's mirror and TLS-inspecting proxy:
#   docker build --build-arg PIP_INDEX_URL=https://pypi-mirror.hospital.example/simple \
#     --secret id=pip-ca,src=/etc/ssl/certs/hospital-proxy-ca.pem -t fasciculation-cds .
# (PIP_INDEX_URL: the index pip installs from; the `pip-ca` secret: a PEM bundle of the CAs pip
# trusts instead of its own, used during the build only and never stored in a layer.)

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# -- build: the project as a wheel, installed with the hash-pinned dependencies -------------------
FROM ${PYTHON_IMAGE} AS build
ARG PIP_INDEX_URL=https://pypi.org/simple
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/fasciculation-cds
# Dependencies first (their own layer, reused while the lock file is unchanged): exact versions,
# every file checked against its hash.
COPY requirements.lock ./
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
 && /opt/fasciculation-cds/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY service ./service
COPY hooks ./hooks
COPY cards ./cards
# The wheel builds with the pinned setuptools/wheel just installed; it brings no dependency of its own.
# Then the installers leave: pip, setuptools and wheel are build tools, not part of the service.
RUN /opt/fasciculation-cds/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation -w /dist . \
 && /opt/fasciculation-cds/bin/pip install --no-cache-dir --no-deps /dist/fasciculation_cds-*.whl \
 && /opt/fasciculation-cds/bin/python -m pip uninstall --yes --quiet setuptools wheel pip \
 && /opt/fasciculation-cds/bin/fasciculation-cds --help > /dev/null

# -- runtime --------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="fasciculation-cds" \
      org.opencontainers.image.description="CDS Hooks 2.0 patient-view service: muscle twitch and cramp review" \
      org.opencontainers.image.licenses="Apache-2.0"

# The base's own installers go too (the python images carry pip, setuptools and wheel).
# A fixed numeric uid/gid, so Kubernetes can check runAsNonRoot and set fsGroup.
RUN if python -m pip --version > /dev/null 2>&1; then python -m pip uninstall --yes --quiet pip setuptools wheel; fi \
 && groupadd --system --gid 10001 cds \
 && useradd --system --uid 10001 --gid cds --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin cds \
 && mkdir -p /var/lib/fasciculation-cds \
 && chown cds:cds /var/lib/fasciculation-cds \
 && chmod 0700 /var/lib/fasciculation-cds

COPY --from=build /opt/fasciculation-cds /opt/fasciculation-cds

ENV PATH=/opt/fasciculation-cds/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CDS_MODE=production \
    CDS_HOST=0.0.0.0 \
    CDS_PORT=8080 \
    CDS_DATA_DIR=/var/lib/fasciculation-cds \
    CDS_RUNTIME_DIR=/var/lib/fasciculation-cds/run \
    TMPDIR=/var/lib/fasciculation-cds

# The only writable path: the embedded SQLite store when DATABASE_URL is unset (CDS_DATA_DIR),
# and under run/ gunicorn's worker heartbeats, Prometheus multiprocess files, temporary files.
VOLUME ["/var/lib/fasciculation-cds"]
USER 10001:10001
# The working directory is read-only too (gunicorn puts it on sys.path).
WORKDIR /opt/fasciculation-cds
EXPOSE 8080
# Liveness only; readiness (/readyz: knowledge, configuration, Redis) is for the orchestrator.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('CDS_PORT', '8080') + '/healthz', timeout=4)"]
# gunicorn with service/gunicorn_conf.py; SIGTERM (the default stop signal) lets workers finish
# their calls for up to 20 s: stop the container with a longer timeout (--stop-timeout 30).
STOPSIGNAL SIGTERM
CMD ["fasciculation-cds", "serve"]
