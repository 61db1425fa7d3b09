#!/bin/sh
# docker compose only: creates the local stack's secrets once, in
# infra/compose/secrets/ (git-ignored). Run it before the first
# `docker compose up`, and again after a change adds a NATS user; it keeps
# every existing password (the postgres volume was initialised with them):
#
#   postgres_password, postgres_superuser_password
#   nats_password_<user>  one per user of infra/compose/nats.conf (one per role);
#                         each role's container mounts only its own
#   nats.env              NATS_PASSWORD_<USER>=... for the nats service (its env_file),
#                         rewritten from the nats_password_* files on every run
#
# Rotating a NATS password: delete its nats_password_<user> file, run this
# again, then `docker compose up -d --force-recreate nats <role>`.
set -eu
cd "$(dirname "$0")/secrets"
# the users nats.conf reads a password for ($NATS_PASSWORD_<USER>), in lower case
nats_users=$(grep -o '\$NATS_PASSWORD_[A-Z0-9_]*' ../nats.conf | sed 's/^\$NATS_PASSWORD_//' | tr 'A-Z' 'a-z' | sort -u)
[ -n "$nats_users" ] || { echo "init-secrets.sh: no NATS users in infra/compose/nats.conf" >&2; exit 1; }
for name in postgres_password postgres_superuser_password $(printf 'nats_password_%s ' $nats_users); do
    if [ ! -s "$name" ]; then
        # a letter, then hex: nats-server parses what it reads from its environment, so a
        # password must not look like a number (1e5...)
        printf 'p%s' "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$name"
        # the containers read it as their own uid (postgres 999, moonport 10001)
        chmod 0644 "$name"
        echo "created infra/compose/secrets/$name"
    fi
done
umask 077
for user in $nats_users; do
    printf 'NATS_PASSWORD_%s=%s\n' "$(echo "$user" | tr 'a-z' 'A-Z')" "$(cat "nats_password_$user")"
done > nats.env.tmp
mv nats.env.tmp nats.env
