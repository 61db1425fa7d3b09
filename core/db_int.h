/*
 * db_int.h: what db_migrate.c needs from the pool in db.c. Not public: the
 * raw PGconn is for running migration files only.
 */
#ifndef MP_DB_INT_H
#define MP_DB_INT_H

#include <libpq-fe.h>
#include "mp/db.h"

/** The libpq connection behind a checked-out `conn`. Borrowed; only for the thread that holds `conn`. */
PGconn *mp_db__pg(mp_db_conn_t *conn);

/** Checks a result as mp_db_exec() does: maps errors, marks a lost connection broken. On MP_OK the caller keeps
 *  `r`; otherwise it has been freed. */
mp_status_t mp_db__check(mp_db_conn_t *conn, PGresult *r);

/** How long a call without its own deadline waits for a pool slot: the connect timeout, in ms. */
int mp_db__wait_ms(mp_db_t *db);

#endif
