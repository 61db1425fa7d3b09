/*
 * mp/db.h: a libpq connection pool, parameterised queries only, and
 * per-service migrations.
 *
 * There is deliberately no way to run SQL with values spliced into the text:
 * every value travels as a parameter ($1, $2 ...) in text format. Errors are
 * mapped from SQLSTATE to mp_status_t (unique violation -> MP_ECONFLICT,
 * lost connection -> MP_EUNAVAIL), with the SQLSTATE and server message in
 * mp_err_get() for the log (never the parameter values).
 *
 * The pool connects lazily and reconnects a broken connection on its next
 * use, so a service starts while Postgres is down and recovers by itself
 * when it returns; mp_db_ping() is what /readyz asks.
 *
 * Thread-safe pool; a checked-out mp_db_conn_t belongs to one thread until
 * released. Blocking: worker threads only, never a loop thread.
 *
 * Every statement is prepared once per connection and then executed by
 * name: Postgres parses and plans it once. Keep SQL texts constant (one
 * text per query shape, values as parameters); each connection keeps at
 * most 256 texts prepared and runs any more unnamed.
 */
#ifndef MP_DB_H
#define MP_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mp/embed.h"
#include "mp/status.h"

typedef struct mp_db mp_db_t;
typedef struct mp_db_conn mp_db_conn_t;
typedef struct mp_db_res mp_db_res_t;

typedef struct mp_db_opts {
    const char *dsn;          /* libpq conninfo ("host=... port=... dbname=... user=...") or postgres:// URL */
    const char *password;     /* NULL: none or from the DSN/PGPASSFILE; copied */
    int pool_size;            /* default 4 */
    int connect_timeout_s;    /* default 3 */
    int statement_timeout_ms; /* default 5000 (0 means default); negative disables */
    const char *app_name;     /* application_name shown in pg_stat_activity */
    const char *settings;     /* session settings for every connection, "-c name=value" pairs (constants only) */
    bool no_prepare;          /* run every statement unnamed (behind a transaction-pooling proxy such as pgbouncer) */
} mp_db_opts_t;

/** Cumulative pool counters, for metrics. */
typedef struct mp_db_counters {
    int size, open, busy; /* slots; connections open; checked out now */
    uint64_t waits;       /* checkouts that found every slot busy and waited */
    double wait_seconds;  /* the time those checkouts waited, in total */
    uint64_t timeouts;    /* checkouts that gave up waiting (MP_ETIMEDOUT) */
    uint64_t prepared;    /* statements prepared (once per text per connection) */
    uint64_t cancelled;   /* statements cancelled at their request's deadline */
} mp_db_counters_t;

/** Creates a pool (no connection is made yet). Caller owns `*out`; free with mp_db_destroy(). */
mp_status_t mp_db_create(mp_db_t **out, const mp_db_opts_t *opts);
/** Closes every connection and frees the pool. All connections must have been released. Accepts NULL. */
void mp_db_destroy(mp_db_t *db);

/** Checks a connection out, connecting (or reconnecting a broken one) as needed; waits up to `timeout_ms` for a
 *  free one. Errors: MP_EUNAVAIL (cannot connect), MP_ETIMEDOUT (pool exhausted). Release with mp_db_release(). */
mp_status_t mp_db_acquire(mp_db_conn_t **out, mp_db_t *db, int timeout_ms);
/** Returns a connection to the pool; an open transaction is rolled back first. Accepts NULL. */
void mp_db_release(mp_db_conn_t *conn);

/** Runs `sql` with `nparams` text parameters, as a statement prepared on this connection the first time it runs
 *  `sql` (the text is the statement's identity: keep SQL texts constant and values in parameters) (NULL entries are SQL
 * NULL). Caller owns `*res` (may be NULL to discard the rows); free with mp_db_res_free(). Errors: MP_ECONFLICT (23505
 * unique violation), MP_EINVAL (22xxx data exception, 23502/23503/23514 constraint), MP_EUNAVAIL (connection lost: the
 * connection is marked broken), MP_ETIMEDOUT (57014 statement timeout), MP_EINTERNAL (anything else). */
mp_status_t mp_db_exec(mp_db_res_t **res, mp_db_conn_t *conn, const char *sql, int nparams, const char *const *params);

/** Runs `sql` outside the pool's checkout, for one-off statements: acquire, exec, release. */
mp_status_t mp_db_exec_once(mp_db_res_t **res, mp_db_t *db, const char *sql, int nparams, const char *const *params);

/** BEGIN / COMMIT / ROLLBACK. Commit errors are mapped like mp_db_exec(). */
mp_status_t mp_db_begin(mp_db_conn_t *conn);
mp_status_t mp_db_commit(mp_db_conn_t *conn);
void mp_db_rollback(mp_db_conn_t *conn);

/** Row count of a result. */
int mp_db_rows(const mp_db_res_t *res);
/** Rows changed by an INSERT/UPDATE/DELETE. */
long mp_db_affected(const mp_db_res_t *res);
/** The value at (row, col) as text, or NULL for SQL NULL. Borrowed; valid until the result is freed. */
const char *mp_db_get(const mp_db_res_t *res, int row, int col);
/** The value at (row, column name), or NULL for SQL NULL or an unknown column. Borrowed. */
const char *mp_db_getn(const mp_db_res_t *res, int row, const char *col);
/** Frees a result. Accepts NULL. */
void mp_db_res_free(mp_db_res_t *res);

/** Answers whether the database is reachable now, within `timeout_ms` (SELECT 1 on a pool connection, or a fresh
 *  connection when none is idle). For /readyz. */
mp_status_t mp_db_ping(mp_db_t *db, int timeout_ms);

/**
 * Applies the numbered migrations in `files` (names "NNNN_what.sql", applied in NNNN order; the table ends with a
 * NULL name) that `<schema>.schema_migrations` does not list yet, each in its own transaction, serialised across
 * replicas with a transaction-scoped advisory lock. Creates the schema and the table when missing. Refuses a file
 * whose number was applied under another name (MP_EINVAL: migrations are append-only).
 */
mp_status_t mp_db_migrate(mp_db_t *db, const char *schema, const mp_embed_file_t *files);

/** Pool statistics for metrics: connections open, checked out. */
void mp_db_stats(mp_db_t *db, int *open, int *busy);
/** Every counter of the pool. Any thread. */
void mp_db_counters(mp_db_t *db, mp_db_counters_t *out);

/** Exports the pool's counters as moonport_db_* metrics labelled service=`service` (core/db_metrics.c). Once per
 *  pool; the pool must outlive metric rendering (the admin port). */
void mp_db_metrics_export(mp_db_t *db, const char *service);

/** Sets the calling thread's deadline (wall-clock ms since the epoch, as in the Deadline header; 0 clears it). A
 *  statement still running at the deadline is cancelled (MP_ETIMEDOUT) and its connection stays usable; one started
 *  after it still gets 250 ms, so clean-up after a timeout runs. COMMIT and ROLLBACK are never cancelled. The
 *  service framework sets it around every handler; other threads have none. */
void mp_db_deadline(int64_t wall_ms);

/** Builds a parameter array literal: MP_DB_PARAMS(id, email). */
#define MP_DB_PARAMS(...) ((const char *const[]){__VA_ARGS__})
#define MP_DB_NPARAMS(...) ((int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)))

#endif
