-- docker compose only: runs once, when the postgres container initialises an
-- empty data volume (docker-entrypoint-initdb.d), as the superuser.
-- The moonport role's password is the compose secret postgres_password, read
-- here with psql's backquote expansion so it never appears in this file.
\set ON_ERROR_STOP on
\set moonport_password `cat /run/secrets/postgres_password`

CREATE ROLE moonport LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'moonport_password';
CREATE DATABASE moonport OWNER moonport;

\connect moonport
-- Services may use trigram indexes; only a superuser can create the extension.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
