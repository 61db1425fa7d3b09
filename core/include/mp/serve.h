/*
 * mp/serve.h: the process lifecycle behind `moonport serve`, `moonport
 * migrate` and the services' own subcommands.
 *
 * serve: load and check the configuration (every service's section, even
 * for roles not started, so a typo anywhere stops start-up with
 * file:line), connect NATS, start each chosen role (its pools, migrations,
 * endpoints, own threads), start the admin port, then wait for a signal.
 * SIGTERM/SIGINT drain: readiness turns 503, roles stop in reverse order
 * (the gateway first, so no new work arrives), in-flight work finishes, and
 * the process exits 0. SIGHUP calls every running role's reload hook.
 *
 * Tools (`moonport backup`, `moonport restore`) get the same configuration
 * and a NATS connection through mp_serve_tool(), without starting a role.
 */
#ifndef MP_SERVE_H
#define MP_SERVE_H

#include "mp/service.h"

/** `moonport serve [--config F] [--roles a,b]`. Returns the exit code. */
int mp_serve_main(int argc, char **argv);
/** `moonport migrate [--config F] [--roles a,b]`: applies every database migration and exits. */
int mp_migrate_main(int argc, char **argv);
/** Runs a service's subcommand with the service connected but not serving. */
int mp_serve_command(const mp_service_def_t *def, const mp_command_t *cmd, int argc, char **argv);

/** A service's Postgres schema (named after the service) and the DSN its role connects with. Borrowed from the
 *  process's configuration. */
typedef struct mp_serve_schema {
    const char *name;
    const char *dsn;
} mp_serve_schema_t;

/** What a platform tool (`moonport backup`, `moonport restore`) is given: the checked configuration, a NATS
 *  connection that is up (no background retry: a tool fails at once when NATS is away), and every service that owns
 *  a schema, in registration order. All borrowed; valid while the tool runs. */
typedef struct mp_serve_tool {
    mp_cfg_t *cfg;
    mp_bus_t *bus;
    const mp_serve_schema_t *schemas;
    size_t nschemas;
} mp_serve_tool_t;

/** A tool's body: returns the process exit code. Runs on the main thread. */
typedef int (*mp_serve_tool_fn)(const mp_serve_tool_t *tool, int argc, char **argv);

/** Loads the configuration as `serve` does (a bad one exits 2), connects NATS as "moonport-<name>" (exit 1 when it
 *  cannot), runs `run` and tears everything down. Opens no database pool and starts no role. */
int mp_serve_tool(const char *name, mp_serve_tool_fn run, int argc, char **argv);

/** The value of option `name` in argv ("--out DIR" or "--out=DIR"), or NULL. Borrowed from argv. */
const char *mp_serve_opt(int argc, char **argv, const char *name);

/** The configuration path: --config, else $MOONPORT_CONFIG, else config/moonport.yaml when it exists, else none. */
const char *mp_serve_config_path(int argc, char **argv);

#endif
