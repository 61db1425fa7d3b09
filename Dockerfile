# moonport: one image for every role (`moonport serve --roles <name>`).
#
#   docker build -t moonport:0.1.0 .
#   docker run --rm moonport:0.1.0 version
#
# Build and runtime dependencies are Debian 12 packages only (infra/deps.txt).

# ---- build --------------------------------------------------------------------------
FROM debian:12-slim AS build
ARG DEBIAN_FRONTEND=noninteractive
# libcmocka-dev: CMake configures tests/ too and stops without it (only the
# `moonport` target is built below).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config \
        libh2o-dev libuv1-dev libluajit2-5.1-dev libnats-dev libpq-dev libhiredis-dev \
        libjansson-dev libssl-dev libyaml-dev libcmocka-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build build -j "$(nproc)" --target moonport \
 && strip build/moonport \
 && build/moonport version \
 && mkdir -p scripts/lua

# ---- runtime ------------------------------------------------------------------------
FROM debian:12-slim
ARG DEBIAN_FRONTEND=noninteractive
# postgresql-client-15: pg_dump, pg_restore and psql for `moonport backup` and `moonport restore`
# (docs/operations.md); its major version must be at least the server's.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libh2o0.13 libuv1 libnats3.4 libpq5 libhiredis0.14 libjansson4 libyaml-0-2 libssl3 \
        libluajit2-5.1-2 ca-certificates postgresql-client-15 \
 && rm -rf /var/lib/apt/lists/*

# A fixed non-root uid/gid (the Helm chart's securityContext uses the same numbers).
# /var/lib/moonport/keys is where `docker compose` keeps Auth's generated signing key.
RUN groupadd --gid 10001 moonport \
 && useradd --uid 10001 --gid 10001 --home-dir /var/lib/moonport --no-create-home \
        --shell /usr/sbin/nologin moonport \
 && mkdir -p /var/lib/moonport/keys \
 && chown -R 10001:10001 /var/lib/moonport \
 && chmod 0700 /var/lib/moonport/keys

COPY --from=build /src/build/moonport /usr/local/bin/moonport
COPY --from=build /src/config/ /etc/moonport/config/
# gateway.specs_dir: the gateway validates requests against these and does not start without them
COPY --from=build /src/api-specs/ /etc/moonport/api-specs/
# scripts/lua (BFF scripts) may not exist yet: the build stage created it.
COPY --from=build /src/scripts/ /etc/moonport/scripts/

# Relative paths in config/moonport.yaml resolve against /etc/moonport; the
# two that matter are pinned here so they hold from any working directory.
# Every other setting comes from the config file or MOONPORT_* variables.
WORKDIR /etc/moonport
ENV MOONPORT_CONFIG=/etc/moonport/config/moonport.yaml \
    MOONPORT_GATEWAY_ROUTES_FILE=/etc/moonport/config/routes.yaml \
    MOONPORT_AUTH_KEYS_DIR=/var/lib/moonport/keys

USER 10001:10001
# 8080: the gateway's public HTTP (gateway.listen); 9090: /healthz, /readyz, /metrics (admin.listen)
EXPOSE 8080 9090
# moonport drains on SIGTERM (shutdown.drain) and reloads TLS certificates and signing keys on SIGHUP.
STOPSIGNAL SIGTERM
ENTRYPOINT ["moonport"]
CMD ["serve", "--config", "/etc/moonport/config/moonport.yaml"]
