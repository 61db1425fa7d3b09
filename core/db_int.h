/*
 * db_int.h: what the files of the database module share. Not public: the
 * raw PGconn is for running migration files only (db_migrate.c), and the
 * statement set is the pool's own (db_stmt.c).
 */
#ifndef MP_DB_INT_H
#define MP_DB_INT_H

#include <libpq-fe.h>
#include "mp/db.h"
#include "mp/u64map.h"

/* ---- db_stmt.c: the prepared statements of one connection ------------------------------ */

#define MP_DB_MAX_STMTS 256 /* per connection; services have a few dozen texts */
#define MP_DB_STMT_NAME 24  /* "mp_" + 16 hex + NUL, rounded up */

typedef struct mp_db_stmts {
    mp_u64map_t map; /* hash of the text (| 1) -> our copy of the text */
} mp_db_stmts_t;

typedef enum {
    MP_DB_STMT_READY,   /* prepared on this connection: execute `name` */
    MP_DB_STMT_NEW,     /* not yet: prepare it as `name`, then mp_db__stmt_add() */
    MP_DB_STMT_UNNAMED, /* the set is full or another text has the hash: run it unnamed */
} mp_db_stmt_kind_t;

/** What to do with `sql` on the connection that holds `s`; fills `name` for READY and NEW. */
mp_db_stmt_kind_t mp_db__stmt_find(mp_db_stmts_t *s, const char *sql, char name[MP_DB_STMT_NAME]);
/** Records that `sql` is now prepared under its name. */
void mp_db__stmt_add(mp_db_stmts_t *s, const char *sql);
/** Forgets every statement (the connection is gone, or its statements were deallocated). */
void mp_db__stmt_clear(mp_db_stmts_t *s);

/** The libpq connection behind a checked-out `conn`. Borrowed; only for the thread that holds `conn`. */
PGconn *mp_db__pg(mp_db_conn_t *conn);

/** Checks a result as mp_db_exec() does: maps errors, marks a lost connection broken. On MP_OK the caller keeps
 *  `r`; otherwise it has been freed. */
mp_status_t mp_db__check(mp_db_conn_t *conn, PGresult *r);

/** How long a call without its own deadline waits for a pool slot: the connect timeout, in ms. */
int mp_db__wait_ms(mp_db_t *db);

#endif
