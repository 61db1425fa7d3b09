/*
 * backup_int.h: what the backup files share (mp/backup.h). backup.c runs
 * the steps; backup_manifest.c writes and verifies manifest.json;
 * backup_pg.c runs pg_dump, pg_restore and psql; backup_nats.c speaks the
 * JetStream snapshot and restore API and asks who is running.
 */
#ifndef MP_BACKUP_INT_H
#define MP_BACKUP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>
#include "mp/bus.h"
#include "mp/status.h"

#define MP_BACKUP_MANIFEST "manifest.json"
#define MP_BACKUP_FORMAT "moonport-backup"
#define MP_BACKUP_FORMAT_VERSION 1

/* ---- backup_manifest.c ------------------------------------------------------------------ */

/** True for a file name a manifest may hold: [A-Za-z0-9_.-], not starting with a dot, so it stays in the folder. */
bool mp_backup__name_ok(const char *name);
/** True for the timestamps this module writes: "YYYY-MM-DDTHH:MM:SS[.ffffff]Z". */
bool mp_backup__timestamp_ok(const char *ts);
/** Adds `name` to the manifest's `files` object with its size and SHA-256 (read from `dir`). Errors: MP_EIO. */
mp_status_t mp_backup__add_file(json_t *files, const char *dir, const char *name);
/** Writes `v` as dir/name atomically (a temporary file, mode 0600, fsync, rename). Errors: MP_EIO. */
mp_status_t mp_backup__write_json(const char *dir, const char *name, const json_t *v);
/**
 * Reads dir/manifest.json and verifies it: its format and version, its `schemas` (each one of `known`, once) and
 * `stream` sections, and every file it lists (present, same size, same SHA-256). Caller owns `*out` (a new
 * reference). Errors: MP_EINVAL with what is wrong, for the operator.
 */
mp_status_t mp_backup__manifest_read(json_t **out, const char *dir, const char *const *known, size_t nknown);

/* ---- backup_pg.c ------------------------------------------------------------------------ */

/** Writes all `n` bytes to `fd`, retrying short writes and EINTR. False with errno set on failure. */
bool mp_backup__write_all(int fd, const void *data, size_t n);
/** The path of PostgreSQL client program `name` ("pg_dump"): from PATH, else the newest /usr/lib/postgresql/N/bin.
 *  Errors: MP_ENOTFOUND. */
mp_status_t mp_backup__pg_tool(char *out, size_t size, const char *name);
/** Runs pg_dump of one schema, custom format, into `path`, reading the exported `snapshot` (NULL: its own). */
mp_status_t mp_backup__pg_dump(const char *dsn, const char *password, const char *schema, const char *snapshot,
                               const char *path);
/** Runs `pg_restore --list` on an archive: it can be read by this pg_restore. Errors: MP_EINVAL. */
mp_status_t mp_backup__pg_list(const char *path);
/** Restores the archives `paths[i]` of the schemas `schemas[i]` into the database `dsn` in one psql transaction,
 *  each schema dropped first. Nothing is committed unless every archive went in. Errors: MP_EINTERNAL. */
mp_status_t mp_backup__pg_restore(const char *dsn, const char *password, const char *const *schemas,
                                  const char *const *paths, size_t n);

/* ---- backup_nats.c ---------------------------------------------------------------------- */

/** Snapshots `stream` (messages and consumers) into the file `path`. `*info` gets {"config", "state"} as the server
 *  described the snapshot (a new reference). Errors: MP_ENOTFOUND (no such stream), MP_ETIMEDOUT, MP_EINTERNAL,
 *  MP_EIO. */
mp_status_t mp_backup__js_snapshot(json_t **info, mp_bus_t *bus, const char *stream, const char *path);
/** The stream's info (a new reference). Errors: MP_ENOTFOUND, MP_ETIMEDOUT, MP_EINTERNAL. */
mp_status_t mp_backup__js_info(json_t **info, mp_bus_t *bus, const char *stream);
/** Deletes the stream. Errors: those of mp_backup__js_info(). */
mp_status_t mp_backup__js_delete(mp_bus_t *bus, const char *stream);
/** Creates `stream` from a snapshot file and the {"config", "state"} it was taken with; the stream must not exist.
 *  `*state` gets the restored stream's state (a new reference). Errors: MP_EINTERNAL, MP_ETIMEDOUT, MP_EIO. */
mp_status_t mp_backup__js_restore(json_t **state, mp_bus_t *bus, const char *stream, const json_t *info,
                                  const char *path);
/** Asks every service instance ($SRV.PING) and collects, for `wait_ms`, the distinct names that answer into `names`
 *  (comma-separated, truncated to `size`); `*count` gets the instances. */
mp_status_t mp_backup__running(size_t *count, char *names, size_t size, mp_bus_t *bus, int wait_ms);

#endif
