# SpawnIt's API and web UI (`spawnit serve`), with OpenTofu to run the jobs.
# Built by the platform-instances stack from this repository: docker build -t spawnit/platform:local .
FROM node:22-bookworm-slim

ARG TARGETARCH=amd64
ARG TOFU_VERSION=1.12.8
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates curl unzip \
 && rm -rf /var/lib/apt/lists/*
# OpenTofu release, checked against its published SHA-256 sums.
RUN set -eu; \
    base="https://github.com/opentofu/opentofu/releases/download/v${TOFU_VERSION}"; \
    file="tofu_${TOFU_VERSION}_linux_${TARGETARCH}.zip"; \
    cd /tmp; \
    curl -fsSLO "$base/$file"; \
    curl -fsSL "$base/tofu_${TOFU_VERSION}_SHA256SUMS" | grep " $file\$" | sha256sum -c -; \
    unzip -q "$file" tofu -d /usr/local/bin; \
    rm "$file"; \
    tofu version

WORKDIR /app
COPY requirements.txt pyproject.toml README.md LICENSE NOTICE ./
COPY spawnit ./spawnit
COPY main.py cdktf.json ./
# The runtime dependencies only (pyproject.toml), at the versions pinned in requirements.txt.
RUN sed 's/\[[^]]*\]//' requirements.txt > /tmp/constraints.txt \
 && python3 -m venv /venv \
 && /venv/bin/pip install --no-cache-dir -c /tmp/constraints.txt setuptools \
 && /venv/bin/pip install --no-cache-dir --no-build-isolation -c /tmp/constraints.txt . \
 && rm /tmp/constraints.txt

# Checkov for the policy gate on plans (spawnit/api/gate.py), in its own virtualenv: its pins clash with SpawnIt's.
COPY requirements-checkov.txt ./
RUN python3 -m venv /checkov \
 && /checkov/bin/pip install --no-cache-dir -r requirements-checkov.txt

# boaviztapi for each applied instance's footprint (spawnit/footprint.py), in its own virtualenv for the same reason.
COPY requirements-boavizta.txt ./
RUN python3 -m venv /boavizta \
 && /boavizta/bin/pip install --no-cache-dir -r requirements-boavizta.txt

ENV PATH=/venv/bin:$PATH \
    SPAWNIT_CHECKOV=/checkov/bin/checkov \
    SPAWNIT_BOAVIZTA_PYTHON=/boavizta/bin/python \
    JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 \
    PYTHONUNBUFFERED=1 \
    SPAWNIT_DATA_DIR=/tmp/spawnit-data
USER node
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --retries=5 CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"]
CMD ["spawnit", "serve", "--host", "0.0.0.0", "--port", "8000"]
