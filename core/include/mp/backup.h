/*
 * mp/backup.h: `moonport backup` and `moonport restore`: the platform's data
 * taken, and put back, as one unit (docs/operations.md).
 *
 * A backup is a folder: one pg_dump archive (custom format) per service
 * schema, a JetStream snapshot of the EVENTS stream (its messages and its
 * durable consumers' positions) with the stream's definition, and
 * manifest.json (when, which version, what, and every file's size and
 * SHA-256), written last, so a folder without one is no backup.
 *
 * Consistency comes from the order: the stream is taken first, then all
 * schemas of one database from one exported snapshot. So every event in the
 * stream was committed in the schemas, every acknowledgement a consumer
 * recorded was for work the schemas hold, and what the stream lacks is in an
 * outbox: the restore marks the rows published after the stream was taken
 * as unpublished, and the publishers send them again.
 *
 * Restoring checks everything first (manifest, checksums, tools, servers,
 * no service running) and changes nothing when a check fails; then it
 * restores the schemas of each database in one transaction and replaces the
 * stream.
 *
 * Blocking; main thread. The database password reaches only the children's
 * PGPASSWORD: it is never logged, put on a command line or written down.
 */
#ifndef MP_BACKUP_H
#define MP_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include "mp/bus.h"
#include "mp/serve.h"
#include "mp/status.h"

typedef struct mp_backup_opts {
    const char *dir;                  /* the backup's folder */
    const mp_serve_schema_t *schemas; /* every schema this build has, with its DSN */
    size_t nschemas;
    const char *pg_password; /* NULL: none (or in the DSN, or PGPASSFILE); borrowed */
    mp_bus_t *bus;           /* connected, with the stream's JetStream API */
    bool force;              /* restore even while services answer $SRV.PING */
} mp_backup_opts_t;

/** A verified backup and the servers it will be restored to, ready to apply. Opaque. */
typedef struct mp_backup_plan mp_backup_plan_t;

/** Writes a backup of every schema and the EVENTS stream into `o->dir` (created when missing; refused when it already
 *  holds a manifest). Prints one line per part to stdout. Errors: MP_EINVAL (the folder), MP_EUNAVAIL (a server),
 *  MP_EINTERNAL (pg_dump failed, JetStream refused), MP_EIO (writing). Without MP_OK there is no manifest. */
mp_status_t mp_backup_create(const mp_backup_opts_t *o);

/** Reads and verifies the backup in `o->dir` (its manifest, every file's size and SHA-256, schemas this build knows)
 *  and checks that it can be restored now (pg_restore reads each archive, the databases and JetStream answer, no
 *  service is running unless `o->force`). Changes nothing. Caller owns `*out`; free with mp_backup_plan_destroy().
 *  Errors: MP_EINVAL (the backup is damaged or not one), MP_ECONFLICT (services running), MP_EUNAVAIL, MP_EINTERNAL. */
mp_status_t mp_backup_check(mp_backup_plan_t **out, const mp_backup_opts_t *o);

/** Restores a checked plan: every database's schemas in one transaction each, the outbox rows to send again, then
 *  the stream (an existing one is replaced). Prints one line per part. On an error the databases restored before it
 *  stay restored; running it again is safe. Errors: MP_EINTERNAL (a tool or JetStream failed), MP_EUNAVAIL. */
mp_status_t mp_backup_restore(mp_backup_plan_t *plan);

/** Frees a plan. Accepts NULL. */
void mp_backup_plan_destroy(mp_backup_plan_t *plan);

/** `moonport backup --out DIR [--config F]`. Returns the exit code: 0, 1 (failed), 2 (usage or configuration). */
int mp_backup_main(int argc, char **argv);
/** `moonport restore --from DIR [--force] [--config F]`. Returns the exit code: 0, 1 (failed while restoring; run it
 *  again), 2 (usage or configuration), 3 (refused: the backup or the servers failed a check, nothing changed). */
int mp_restore_main(int argc, char **argv);

#endif
