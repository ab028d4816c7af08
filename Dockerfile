# syntax=docker/dockerfile:1
# Build stage: install, type-check and bundle.
FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY scripts ./scripts
COPY src ./src
RUN node scripts/build.mjs

# Runtime stage: the bundle only (no node_modules, no npm in the start path).
# No HEALTHCHECK: Kubernetes probes /livez and /readyz (see k8s/deployment.yaml).
FROM node:24-slim
# The image is "oz-worker", the name the Helm chart's default image.repository ends
# in; the release workflow tags it with the chart's appVersion (VERSION).
ARG VERSION=dev
LABEL org.opencontainers.image.title="oz-worker" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.description="Self-hosted worker for Oz cloud-agent tasks"
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /home/oz --create-home oz
WORKDIR /app
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY examples ./examples
COPY package.json ./
# A read-only root filesystem works: the compile cache, temp files and the worker's
# journal (state dir) go to /tmp (mount an emptyDir there in Kubernetes).
ENV NODE_ENV=production NODE_COMPILE_CACHE=/tmp/node-compile-cache OZ_WORKER_STATE_DIR=/tmp/oz-worker-state
USER 10001
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/bin/oz-worker.js"]
