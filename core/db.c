/*
 * db.c: the libpq connection pool, parameterised execution and SQLSTATE
 * mapping (see mp/db.h; migrations are in db_migrate.c).
 *
 * The pool is a fixed array of slots under one mutex. A checked-out slot
 * belongs to one thread, which alone touches its PGconn, so libpq runs
 * outside the lock; only the slot's `pg` pointer and `busy` flag change
 * under it (for mp_db_stats()). Connections are made lazily with our own
 * deadline around PQconnectPoll: libpq's connect_timeout has a 2 s floor and
 * only applies to its blocking connect. A connection that failed is marked
 * broken and replaced at its next checkout, and so is an idle one whose
 * socket turned readable (the server closed it, or sent a FATAL first), so
 * a Postgres restart costs errors only while it is down.
 *
 * Values only ever travel as parameters. Each connection prepares a text
 * the first time it runs it and executes it by name afterwards
 * (db_stmt.c), so Postgres parses and plans nothing twice: a statement
 * whose result type a migration changed, or that has vanished, is
 * prepared again (outside a transaction, transparently). The plain
 * PQexec calls run migration files, which are code from the repository,
 * and DEALLOCATE ALL.
 *
 * Statements are sent and awaited with a deadline: the calling thread's
 * request deadline (mp_db_deadline(), set by the service framework). Past
 * it the server is asked to cancel the statement, which fails with
 * MP_ETIMEDOUT and leaves the connection idle and reusable: a caller that
 * gave up does not keep a connection, and the pool's slots go to requests
 * that can still be answered.
 *
 * Every wait (connect, a statement's result, a free slot) goes through
 * mp/fiber.h: on a service's fiber worker it yields the thread to the next
 * request, elsewhere it blocks as before. A fiber waiting for a slot queues
 * itself on `fwait` and the releasing thread wakes the first in line.
 */
#include <assert.h>
#include <stdatomic.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mp/alloc.h"
#include "mp/db.h"
#include "mp/fiber.h"
#include "mp/log.h"
#include "db_int.h"

struct mp_db_conn {
    mp_db_t *db;
    PGconn *pg;
    bool busy;           /* checked out; under db->mu */
    bool in_tx;          /* BEGIN seen without COMMIT/ROLLBACK; owner thread only */
    bool broken;         /* replace at next checkout; owner thread only */
    mp_db_stmts_t stmts; /* prepared on `pg`; owner thread only */
};

/* A fiber waiting for a slot; on its own stack, linked while it waits. */
typedef struct fwaiter {
    mp_fiber_t *f;
    bool called; /* popped by a release: it owes the next waiter the wake-up if it does not take the slot */
    struct fwaiter *next;
} fwaiter_t;

struct mp_db {
    char *dsn, *password, *dsn_password, *app_name;
    char *options; /* libpq startup options: "-c name=value ..." */
    int pool_size, connect_timeout_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    mp_db_conn_t *slots;
    fwaiter_t *fwait;   /* FIFO of fibers waiting for a slot; under mu */
    int thread_waiters; /* threads in pthread_cond_timedwait for a slot; under mu (no signal when none) */
    bool prepare;       /* name and prepare statements (off behind a transaction-pooling proxy) */
    /* for mp_db_counters(): cumulative, any thread */
    _Atomic uint64_t n_waits, n_wait_ns, n_timeouts, n_prepared, n_cancelled;
};

/* A statement started after its request's deadline still gets this long (see cancel_at()). */
#define MIN_STATEMENT_MS 250
/* How long a cancelled statement has to answer before its connection is given up. */
#define CANCEL_GRACE_MS 1000

struct mp_db_res {
    PGresult *pg;
};

static int64_t clock_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ms(void)
{
    return mp_mono_ms();
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* libpq's messages end in a newline and, on principle, must not carry a password even if some future version
 * echoes connection parameters: cut the one, mask the other. */
static void clean_msg(char *out, size_t outsz, const char *msg, const char *secret)
{
    size_t n = 0, slen = secret && *secret ? strlen(secret) : 0;
    while (*msg && n + 4 < outsz) {
        if (slen && strncmp(msg, secret, slen) == 0) {
            memcpy(out + n, "***", 3);
            n += 3;
            msg += slen;
        } else {
            out[n++] = *msg == '\n' || *msg == '\t' ? ' ' : *msg;
            msg++;
        }
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

static void on_notice(void *arg, const PGresult *r)
{
    /* libpq prints notices ("schema ... already exists, skipping") to stderr by default; our stderr is JSON lines */
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    bool warn = sev && strcmp(sev, "WARNING") == 0;
    mp_log_kv(warn ? MP_LOG_WARN : MP_LOG_DEBUG, NULL, "postgres notice", "severity", sev, "message", msg, NULL);
}

static mp_status_t connect_pg(PGconn **out, mp_db_t *db, int timeout_ms)
{
    /* dbname comes first and is expanded (conninfo or URL); the entries after it override the DSN's. No
     * connect_timeout: libpq applies it only to its blocking connect, and the poll loop below keeps the deadline. */
    const char *kw[] = {"dbname", "password", "application_name", "options", NULL};
    const char *val[] = {db->dsn, db->password, db->app_name, db->options, NULL};
    char msg[512];
    int64_t deadline = now_ms() + timeout_ms;
    PGconn *pg = PQconnectStartParams(kw, val, 1);
    if (pg == NULL)
        return mp_err_set(MP_ENOMEM, "db: out of memory connecting");
    /* a fresh connection behaves as if PQconnectPoll had last answered WRITING */
    PostgresPollingStatusType ps = PQstatus(pg) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
    while (ps != PGRES_POLLING_OK && ps != PGRES_POLLING_FAILED) {
        int n = now_ms() < deadline
                    ? mp_fiber_wait_fd(PQsocket(pg), ps == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline)
                    : 0;
        if (n == 0) {
            PQfinish(pg);
            return mp_err_set(MP_EUNAVAIL, "db: connect timed out after %d ms", timeout_ms);
        }
        if (n < 0)
            break;
        ps = PQconnectPoll(pg);
    }
    if (ps != PGRES_POLLING_OK) {
        clean_msg(msg, sizeof(msg), PQerrorMessage(pg), db->password ? db->password : db->dsn_password);
        PQfinish(pg);
        return mp_err_set(MP_EUNAVAIL, "db: connect: %s", msg);
    }
    PQsetNoticeReceiver(pg, on_notice, NULL);
    *out = pg;
    return MP_OK;
}

mp_status_t mp_db_create(mp_db_t **out, const mp_db_opts_t *opts)
{
    char *err = NULL;
    PQconninfoOption *ci = PQconninfoParse(opts->dsn ? opts->dsn : "", &err);
    if (ci == NULL) {
        /* the parser's message may quote the DSN, password included: do not pass it on */
        mp_status_t st = err ? MP_EINVAL : MP_ENOMEM;
        PQfreemem(err);
        return mp_err_set(st, "db: dsn is not a valid conninfo string or URL");
    }
    mp_db_t *db = mp_xcalloc(1, sizeof(*db));
    for (PQconninfoOption *o = ci; o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val && *o->val)
            db->dsn_password = mp_xstrdup(o->val);
    PQconninfoFree(ci);
    db->dsn = mp_xstrdup(opts->dsn);
    db->password = mp_xstrdup(opts->password);
    db->app_name = mp_xstrdup(opts->app_name);
    db->pool_size = opts->pool_size > 0 ? opts->pool_size : 4;
    db->prepare = !opts->no_prepare;
    db->connect_timeout_ms = (opts->connect_timeout_s > 0 ? opts->connect_timeout_s : 3) * 1000;
    int st_ms = opts->statement_timeout_ms == 0  ? 5000
                : opts->statement_timeout_ms < 0 ? 0
                                                 : opts->statement_timeout_ms;
    db->options = mp_xasprintf("-c statement_timeout=%d%s%s", st_ms, opts->settings ? " " : "",
                               opts->settings ? opts->settings : "");
    db->slots = mp_xcalloc((size_t)db->pool_size, sizeof(*db->slots));
    for (int i = 0; i < db->pool_size; i++)
        db->slots[i].db = db;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&db->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&db->mu, NULL);
    *out = db;
    return MP_OK;
}

void mp_db_destroy(mp_db_t *db)
{
    if (db == NULL)
        return;
    for (int i = 0; i < db->pool_size; i++) {
        assert(!db->slots[i].busy && "mp_db_destroy with a connection still checked out");
        PQfinish(db->slots[i].pg);
        mp_db__stmt_clear(&db->slots[i].stmts);
    }
    pthread_mutex_destroy(&db->mu);
    pthread_cond_destroy(&db->cv);
    free(db->slots);
    free(db->dsn);
    free(db->password);
    free(db->dsn_password);
    free(db->app_name);
    free(db->options);
    free(db);
}

static void drop_pg(mp_db_conn_t *c)
{
    pthread_mutex_lock(&c->db->mu);
    PGconn *pg = c->pg;
    c->pg = NULL;
    pthread_mutex_unlock(&c->db->mu);
    PQfinish(pg);
    mp_db__stmt_clear(&c->stmts); /* they lived in that session */
}

/* Idle connections have nothing to read: a readable socket means EOF, or a FATAL the server sent before closing. */
static bool idle_conn_ok(PGconn *pg)
{
    struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN};
    return PQstatus(pg) == CONNECTION_OK && PQtransactionStatus(pg) == PQTRANS_IDLE && p.fd >= 0 && poll(&p, 1, 0) == 0;
}

/* Wakes the first fiber waiting for a slot. Under db->mu; the wake itself takes only the fiber's scheduler lock. */
static void pass_wake_on(mp_db_t *db)
{
    fwaiter_t *w = db->fwait;
    if (w == NULL)
        return;
    db->fwait = w->next;
    w->called = true;
    mp_fiber_wake(w->f);
}

/* A slot came free: tell one waiting thread and one waiting fiber (whoever loses looks again). Under db->mu. */
static void wake_one(mp_db_t *db)
{
    if (db->thread_waiters > 0)
        pthread_cond_signal(&db->cv);
    pass_wake_on(db);
}

/* Parks the calling fiber in line for a slot until a release wakes it or `deadline` passes. Under db->mu (released
 * while parked: the thread serves other fibers meanwhile). */
static void wait_as_fiber(mp_db_t *db, int64_t deadline)
{
    fwaiter_t me = {.f = mp_fiber_current()}, **pp = &db->fwait;
    while (*pp)
        pp = &(*pp)->next;
    *pp = &me;
    pthread_mutex_unlock(&db->mu);
    mp_fiber_park(deadline);
    pthread_mutex_lock(&db->mu);
    if (!me.called) /* its deadline came first: leave the line */
        for (pp = &db->fwait; *pp; pp = &(*pp)->next)
            if (*pp == &me) {
                *pp = me.next;
                break;
            }
}

static mp_status_t acquire(mp_db_conn_t **out, mp_db_t *db, int wait_ms, int connect_ms)
{
    mp_db_conn_t *c = NULL;
    int64_t deadline = now_ms() + (wait_ms > 0 ? wait_ms : 0);
    struct timespec ts = {.tv_sec = deadline / 1000, .tv_nsec = (deadline % 1000) * 1000000};
    int64_t waited_from = 0;
    pthread_mutex_lock(&db->mu);
    for (;;) {
        /* prefer a slot that already holds a connection */
        for (int i = 0; i < db->pool_size; i++)
            if (!db->slots[i].busy && (c == NULL || (c->pg == NULL && db->slots[i].pg)))
                c = &db->slots[i];
        if (c || now_ms() >= deadline)
            break;
        waited_from = waited_from ? waited_from : mono_ns();
        if (mp_fiber_current()) {
            wait_as_fiber(db, deadline);
        } else {
            db->thread_waiters++;
            pthread_cond_timedwait(&db->cv, &db->mu, &ts);
            db->thread_waiters--;
        }
    }
    if (c)
        c->busy = true;
    else
        pass_wake_on(db); /* a release meant for someone that gave up: whoever waits next may use it */
    pthread_mutex_unlock(&db->mu);
    if (waited_from) { /* every slot was busy: the pool, not Postgres, held this caller up */
        atomic_fetch_add(&db->n_waits, 1);
        atomic_fetch_add(&db->n_wait_ns, (uint64_t)(mono_ns() - waited_from));
    }
    if (c == NULL && wait_ms > 0)
        atomic_fetch_add(&db->n_timeouts, 1);
    if (c == NULL)
        return mp_err_set(MP_ETIMEDOUT, "db: no free connection within %d ms (pool of %d)", wait_ms, db->pool_size);

    if (c->pg && !idle_conn_ok(c->pg)) /* release already dropped broken ones */
        drop_pg(c);
    c->broken = c->in_tx = false;
    if (c->pg == NULL) {
        PGconn *pg;
        mp_status_t st = connect_pg(&pg, db, connect_ms);
        pthread_mutex_lock(&db->mu);
        if (st == MP_OK) {
            c->pg = pg;
        } else {
            c->busy = false; /* left empty: the next checkout tries again */
            wake_one(db);
        }
        pthread_mutex_unlock(&db->mu);
        if (st != MP_OK)
            return st;
    }
    *out = c;
    return MP_OK;
}

mp_status_t mp_db_acquire(mp_db_conn_t **out, mp_db_t *db, int timeout_ms)
{
    return acquire(out, db, timeout_ms, db->connect_timeout_ms);
}

void mp_db_release(mp_db_conn_t *conn)
{
    if (conn == NULL)
        return;
    mp_db_t *db = conn->db;
    if (!conn->broken && (conn->in_tx || PQtransactionStatus(conn->pg) != PQTRANS_IDLE))
        mp_db_rollback(conn);
    if (conn->broken)
        drop_pg(conn); /* free the server's backend now rather than at the next checkout */
    pthread_mutex_lock(&db->mu);
    conn->busy = false;
    wake_one(db);
    pthread_mutex_unlock(&db->mu);
}

static bool sqlstate_is(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Maps a failed result (or none) to a status, marks the connection broken when it is lost, and records
 * "sqlstate XXXXX: <primary message>" (never DETAIL, which quotes row values). */
static mp_status_t map_error(mp_db_conn_t *c, const PGresult *r)
{
    char msg[512];
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (state == NULL) {
        /* libpq's own failure (lost connection, out of memory, misuse): start over with a new connection */
        c->broken = true;
        clean_msg(msg, sizeof(msg), primary ? primary : PQerrorMessage(c->pg), NULL);
        bool lost = r == NULL || PQstatus(c->pg) != CONNECTION_OK;
        return mp_err_set(lost ? MP_EUNAVAIL : MP_EINTERNAL, "db: %s", *msg ? msg : "no result");
    }
    if (PQstatus(c->pg) != CONNECTION_OK || sqlstate_is(state, "08") || sqlstate_is(state, "57P0")) {
        c->broken = true; /* 57P01-57P03: terminated, crash recovery, cannot connect now */
        clean_msg(msg, sizeof(msg), primary ? primary : "", NULL);
        return mp_err_set(MP_EUNAVAIL, "sqlstate %s: %s", state, msg);
    }
    /* data exceptions quote the offending input ('invalid input syntax for type integer: "abc"'): keep the
     * message up to the quote so parameter values stay out of the logs */
    clean_msg(msg, sizeof(msg), primary ? primary : "", NULL);
    char *q = strstr(msg, ": \"");
    if (sqlstate_is(state, "22") && q)
        *q = '\0';
    mp_status_t st = MP_EINTERNAL;
    if (strcmp(state, "23505") == 0 || strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
        st = MP_ECONFLICT;
    else if (sqlstate_is(state, "22") || strcmp(state, "23502") == 0 || strcmp(state, "23503") == 0 ||
             strcmp(state, "23514") == 0)
        st = MP_EINVAL;
    else if (strcmp(state, "57014") == 0)
        st = MP_ETIMEDOUT;
    return mp_err_set(st, "sqlstate %s: %s", state, msg);
}

mp_status_t mp_db__check(mp_db_conn_t *c, PGresult *r)
{
    ExecStatusType es = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK || es == PGRES_EMPTY_QUERY)
        return MP_OK;
    mp_status_t st;
    if (es == PGRES_FATAL_ERROR || es == PGRES_NONFATAL_ERROR) {
        st = map_error(c, r);
    } else {
        /* COPY or a protocol error: the connection is in a state we do not drive */
        c->broken = true;
        st = mp_err_set(MP_EINTERNAL, "db: unexpected result %s", PQresStatus(es));
    }
    PQclear(r);
    return st;
}

/* The caller's deadline (wall-clock ms, 0: none) lives with its fiber or thread (mp_fiber_deadline()): the service
 * framework sets it around each handler. */
void mp_db_deadline(int64_t wall_ms)
{
    *mp_fiber_deadline() = wall_ms;
}

/* When to cancel a statement starting now (monotonic ms; 0: never). A statement always gets MIN_STATEMENT_MS even
 * past the deadline: the cleanup a handler does after a timeout (drop a claim, release stock) must still run. */
static int64_t cancel_at(bool cancellable)
{
    int64_t deadline = *mp_fiber_deadline();
    if (!cancellable || deadline == 0)
        return 0;
    int64_t left = deadline - clock_ms(CLOCK_REALTIME); /* deadlines cross processes: wall clock */
    return now_ms() + (left > MIN_STATEMENT_MS ? left : MIN_STATEMENT_MS);
}

/* Asks the server to cancel what `c` is running. PQcancel opens its own short connection. */
static void cancel_running(mp_db_conn_t *c)
{
    char err[256];
    PGcancel *cn = PQgetCancel(c->pg);
    if (cn == NULL || !PQcancel(cn, err, sizeof(err)))
        c->broken = true; /* cannot even ask: do not wait for an answer that may never come */
    PQfreeCancel(cn);
    atomic_fetch_add(&c->db->n_cancelled, 1);
}

/* Waits for the socket to be readable until `at` (monotonic ms; 0: no limit); a fiber yields meanwhile. False on
 * timeout. */
static bool wait_readable(PGconn *pg, int64_t at)
{
    return mp_fiber_wait_fd(PQsocket(pg), POLLIN, at) != 0;
}

/* Collects the result of the statement just sent. Past `at` the statement is cancelled and given CANCEL_GRACE_MS
 * to answer (with 57014); a connection that does not is broken. NULL when the connection failed. */
static PGresult *await_result(mp_db_conn_t *c, int64_t at)
{
    PGresult *first = NULL, *r;
    bool cancelled = false;
    for (;;) {
        while (PQisBusy(c->pg)) {
            if (c->broken)
                goto lost;
            if (!wait_readable(c->pg, at)) {
                if (cancelled)
                    goto lost;
                cancel_running(c);
                cancelled = true;
                at = now_ms() + CANCEL_GRACE_MS;
                continue;
            }
            if (!PQconsumeInput(c->pg))
                goto lost;
        }
        if ((r = PQgetResult(c->pg)) == NULL)
            return first;
        if (first == NULL)
            first = r;
        else
            PQclear(r); /* one statement, one result: anything more is protocol noise */
    }
lost:
    c->broken = true;
    PQclear(first);
    return NULL;
}

/* True for errors that mean this connection's prepared statement is stale: its result type changed under it (a
 * migration altered the table: "cached plan must not change result type"), or it is gone (26000). */
static bool stmt_stale(const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return state && (strcmp(state, "0A000") == 0 || strcmp(state, "26000") == 0);
}

/* Runs `sql` once: by name when prepared, preparing it first when new, unnamed when the set cannot take it. */
static PGresult *run_once(mp_db_conn_t *c, const char *sql, int n, const char *const *params, int64_t at)
{
    char name[MP_DB_STMT_NAME];
    mp_db_stmt_kind_t kind = c->db->prepare ? mp_db__stmt_find(&c->stmts, sql, name) : MP_DB_STMT_UNNAMED;
    if (kind == MP_DB_STMT_NEW) {
        if (!PQsendPrepare(c->pg, name, sql, n, NULL))
            return NULL;
        PGresult *r = await_result(c, at);
        if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK)
            return r; /* a syntax error, say: reported as the statement's own */
        PQclear(r);
        mp_db__stmt_add(&c->stmts, sql);
        atomic_fetch_add(&c->db->n_prepared, 1);
    }
    /* text parameters, text results: values never enter the SQL text */
    int sent = kind == MP_DB_STMT_UNNAMED ? PQsendQueryParams(c->pg, sql, n, NULL, params, NULL, NULL, 0)
                                          : PQsendQueryPrepared(c->pg, name, n, params, NULL, NULL, 0);
    return sent ? await_result(c, at) : NULL;
}

/* Forgets (and deallocates) every statement after one turned stale. Outside a transaction the statement is run
 * again, prepared afresh; inside one the transaction is already aborted, so the connection is retired instead and
 * the caller gets the error (MP_EUNAVAIL: retry). */
static PGresult *recover_stale(mp_db_conn_t *c, PGresult *r, const char *sql, int n, const char *const *params,
                               int64_t at)
{
    mp_db__stmt_clear(&c->stmts);
    if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        c->broken = true;
        return r;
    }
    PQclear(r);
    PQclear(PQexec(c->pg, "DEALLOCATE ALL"));
    return run_once(c, sql, n, params, at);
}

static mp_status_t exec_sql(mp_db_res_t **res, mp_db_conn_t *conn, const char *sql, int nparams,
                            const char *const *params, bool cancellable)
{
    if (conn->broken)
        return mp_err_set(MP_EUNAVAIL, "db: connection is broken; release it");
    int64_t at = cancel_at(cancellable);
    PGresult *r = run_once(conn, sql, nparams, params, at);
    if (stmt_stale(r))
        r = recover_stale(conn, r, sql, nparams, params, at);
    bool stale = stmt_stale(r);
    mp_status_t st = mp_db__check(conn, r);
    if (st != MP_OK && stale) /* still stale: inside a transaction, which the error aborted */
        return mp_err_set(MP_EUNAVAIL, "db: a table changed under this transaction's statement; retry it");
    if (st == MP_ETIMEDOUT && at && now_ms() >= at)
        mp_err_set(MP_ETIMEDOUT, "db: statement cancelled at its request's deadline");
    if (st != MP_OK)
        return st;
    if (res) {
        *res = mp_xmalloc(sizeof(**res));
        (*res)->pg = r;
    } else {
        PQclear(r);
    }
    return MP_OK;
}

mp_status_t mp_db_exec(mp_db_res_t **res, mp_db_conn_t *conn, const char *sql, int nparams, const char *const *params)
{
    return exec_sql(res, conn, sql, nparams, params, true);
}

mp_status_t mp_db_exec_once(mp_db_res_t **res, mp_db_t *db, const char *sql, int nparams, const char *const *params)
{
    mp_db_conn_t *c;
    /* no caller deadline here: wait for a slot as long as a connect may take */
    mp_status_t st = mp_db_acquire(&c, db, mp_db__wait_ms(db));
    if (st != MP_OK)
        return st;
    st = mp_db_exec(res, c, sql, nparams, params);
    mp_db_release(c);
    return st;
}

mp_status_t mp_db_begin(mp_db_conn_t *conn)
{
    mp_status_t st = mp_db_exec(NULL, conn, "BEGIN", 0, NULL);
    if (st == MP_OK)
        conn->in_tx = true;
    return st;
}

mp_status_t mp_db_commit(mp_db_conn_t *conn)
{
    /* COMMIT of a transaction an earlier error aborted "succeeds": the server rolls back and answers with the
     * command tag ROLLBACK, which PQresultStatus reports as PGRES_COMMAND_OK */
    if (!conn->broken && PQtransactionStatus(conn->pg) == PQTRANS_INERROR) {
        mp_db_rollback(conn);
        return mp_err_set(MP_EINTERNAL, "db: commit of a transaction aborted by an earlier error; rolled back");
    }
    /* never cancelled: a COMMIT cut off by the deadline would leave the caller unsure whether it happened */
    mp_status_t st = exec_sql(NULL, conn, "COMMIT", 0, NULL, false);
    conn->in_tx = false;
    return st;
}

void mp_db_rollback(mp_db_conn_t *conn)
{
    if (!conn->broken && exec_sql(NULL, conn, "ROLLBACK", 0, NULL, false) != MP_OK)
        conn->broken = true; /* a connection that cannot roll back must not serve anyone else */
    conn->in_tx = false;
}

int mp_db_rows(const mp_db_res_t *res)
{
    return PQntuples(res->pg);
}

long mp_db_affected(const mp_db_res_t *res)
{
    return atol(PQcmdTuples(res->pg)); /* "" for statements that change no rows */
}

const char *mp_db_get(const mp_db_res_t *res, int row, int col)
{
    /* libpq reports out-of-range indexes through the notice processor; check them here instead */
    if (row < 0 || row >= PQntuples(res->pg) || col < 0 || col >= PQnfields(res->pg) || PQgetisnull(res->pg, row, col))
        return NULL;
    return PQgetvalue(res->pg, row, col);
}

const char *mp_db_getn(const mp_db_res_t *res, int row, const char *col)
{
    return mp_db_get(res, row, PQfnumber(res->pg, col));
}

void mp_db_res_free(mp_db_res_t *res)
{
    if (res == NULL)
        return;
    PQclear(res->pg);
    free(res);
}

/* SELECT 1 that gives up at `deadline`, even on a connection whose server has stopped answering. */
static mp_status_t select1_until(PGconn *pg, int64_t deadline)
{
    if (!PQsendQueryParams(pg, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0))
        return MP_EUNAVAIL;
    while (PQisBusy(pg)) {
        if (now_ms() >= deadline || mp_fiber_wait_fd(PQsocket(pg), POLLIN, deadline) <= 0 || !PQconsumeInput(pg))
            return MP_EUNAVAIL;
    }
    bool ok = true;
    PGresult *r;
    while ((r = PQgetResult(pg)) != NULL) {
        ok = ok && PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
    }
    return ok ? MP_OK : MP_EUNAVAIL;
}

mp_status_t mp_db_ping(mp_db_t *db, int timeout_ms)
{
    if (timeout_ms <= 0)
        timeout_ms = 1000;
    int64_t deadline = now_ms() + timeout_ms;
    int connect_ms = timeout_ms < db->connect_timeout_ms ? timeout_ms : db->connect_timeout_ms;
    mp_db_conn_t *c = NULL;
    PGconn *pg = NULL;
    /* readiness must not depend on how busy the pool is: with no slot free, ask over a fresh connection */
    mp_status_t st = acquire(&c, db, 0, connect_ms);
    if (st == MP_ETIMEDOUT)
        st = connect_pg(&pg, db, connect_ms);
    if (st != MP_OK)
        return st; /* MP_EUNAVAIL from the connect, with its reason */
    st = select1_until(c ? c->pg : pg, deadline);
    if (st != MP_OK)
        mp_err_set(st, "db: ping failed within %d ms", timeout_ms);
    if (c) {
        c->broken = c->broken || st != MP_OK; /* the query may still be in flight */
        mp_db_release(c);
    }
    PQfinish(pg);
    return st;
}

void mp_db_stats(mp_db_t *db, int *open, int *busy)
{
    int o = 0, b = 0;
    pthread_mutex_lock(&db->mu);
    for (int i = 0; i < db->pool_size; i++) {
        o += db->slots[i].pg != NULL;
        b += db->slots[i].busy;
    }
    pthread_mutex_unlock(&db->mu);
    *open = o;
    *busy = b;
}

void mp_db_counters(mp_db_t *db, mp_db_counters_t *out)
{
    mp_db_stats(db, &out->open, &out->busy);
    out->size = db->pool_size;
    out->waits = atomic_load(&db->n_waits);
    out->wait_seconds = (double)atomic_load(&db->n_wait_ns) / 1e9;
    out->timeouts = atomic_load(&db->n_timeouts);
    out->prepared = atomic_load(&db->n_prepared);
    out->cancelled = atomic_load(&db->n_cancelled);
}

PGconn *mp_db__pg(mp_db_conn_t *conn)
{
    return conn->pg;
}

int mp_db__wait_ms(mp_db_t *db)
{
    return db->connect_timeout_ms;
}
