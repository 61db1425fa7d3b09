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

/** The configuration path: --config, else $MOONPORT_CONFIG, else config/moonport.yaml when it exists, else none. */
const char *mp_serve_config_path(int argc, char **argv);

#endif
