#!/bin/sh
# docker compose only: creates the local stack's password files once, in
# infra/compose/secrets/ (git-ignored). Run it before the first
# `docker compose up`; later runs keep the existing files, because the
# postgres volume was initialised with them.
set -eu
cd "$(dirname "$0")/secrets"
for name in postgres_password postgres_superuser_password; do
    if [ ! -s "$name" ]; then
        head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$name"
        # the containers read it as their own uid (postgres 999, moonport 10001)
        chmod 0644 "$name"
        echo "created infra/compose/secrets/$name"
    fi
done
