/*
 * Integration tests for mp_db against a real Postgres: parameterised
 * execution (values never reach the SQL text), SQLSTATE mapping,
 * transactions, the pool (exhaustion, waiting, recovery after the server
 * kills a backend), ping, and migrations (order, idempotence, append-only,
 * atomic failure, concurrent replicas).
 *
 * Everything lives in schemas named t_<pid>[_suffix], dropped at the end.
 * Test SQL writes '@' for the schema; only the test splices it in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "mp/db.h"
#include "mp/log.h"
#include "integration/testenv.h"

static mp_db_t *db;
static char schema[32];
static char *garbage[256];
static int ngarbage;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* `tmpl` with every '@' replaced by `sch`; freed by the per-test teardown. */
static char *sqs(const char *sch, const char *tmpl)
{
    size_t n = 0, sl = strlen(sch);
    char *out = malloc(strlen(tmpl) * (sl + 1) + 1);
    for (const char *p = tmpl; *p; p++) {
        if (*p == '@') {
            memcpy(out + n, sch, sl);
            n += sl;
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    assert_true(ngarbage < 256);
    garbage[ngarbage++] = out;
    return out;
}

static char *sq(const char *tmpl)
{
    return sqs(schema, tmpl);
}

static void run(const char *sql)
{
    assert_int_equal(mp_db_exec_once(NULL, db, sql, 0, NULL), MP_OK);
}

/* The single value a query returns, copied (NULL for SQL NULL); freed by the per-test teardown. */
static char *scalar(const char *sql, int n, const char *const *params)
{
    mp_db_res_t *r = NULL;
    assert_int_equal(mp_db_exec_once(&r, db, sql, n, params), MP_OK);
    assert_int_equal(mp_db_rows(r), 1);
    const char *v = mp_db_get(r, 0, 0);
    char *out = v ? strdup(v) : NULL;
    mp_db_res_free(r);
    if (out) {
        assert_true(ngarbage < 256);
        garbage[ngarbage++] = out;
    }
    return out;
}

static long count(const char *sql)
{
    return atol(scalar(sql, 0, NULL));
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* A TCP port whose kernel completes connections that nobody ever reads or answers. Returns the fd to close. */
static int silent_listener(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void assert_no_checkouts(mp_db_t *d)
{
    int open, busy;
    mp_db_stats(d, &open, &busy);
    assert_int_equal(busy, 0);
}

static int group_setup(void **state)
{
    snprintf(schema, sizeof(schema), "t_%d", (int)getpid());
    mp_db_opts_t o = {.dsn = MP_TEST_PG_DSN(), .app_name = "test_db"};
    assert_int_equal(mp_db_create(&db, &o), MP_OK);
    run(sq("CREATE SCHEMA @"));
    run(sq("CREATE TABLE @.kv (k text PRIMARY KEY, v text, n integer NOT NULL DEFAULT 0 CHECK (n >= 0))"));
    return 0;
}

static int group_teardown(void **state)
{
    const char *suffixes[] = {"", "_m1", "_m2", "_m3", "_m4", "_m5"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(*suffixes); i++) {
        char s[48], sql[96];
        snprintf(s, sizeof(s), "%s%s", schema, suffixes[i]);
        snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", s);
        run(sql);
    }
    assert_no_checkouts(db);
    mp_db_destroy(db);
    return 0;
}

static int setup(void **state)
{
    run(sq("TRUNCATE @.kv"));
    return 0;
}

static int teardown(void **state)
{
    assert_no_checkouts(db); /* every test releases what it acquired */
    for (int i = 0; i < ngarbage; i++)
        free(garbage[i]);
    ngarbage = 0;
    return 0;
}

static void test_db_exec_params_round_trip_verbatim(void **state)
{
    const char *evil = "x'); DROP TABLE t; -- \"q\" \\ $1 ; caf\xc3\xa9";
    mp_db_res_t *r = NULL;
    assert_int_equal(
        mp_db_exec_once(&r, db, sq("INSERT INTO @.kv (k, v) VALUES ($1, $2)"), 2, MP_DB_PARAMS("evil", evil)), MP_OK);
    assert_int_equal(mp_db_affected(r), 1);
    mp_db_res_free(r);

    assert_int_equal(mp_db_exec_once(&r, db, sq("SELECT v, k, n FROM @.kv WHERE k = $1"), 1, MP_DB_PARAMS("evil")),
                     MP_OK);
    assert_int_equal(mp_db_rows(r), 1);
    assert_string_equal(mp_db_get(r, 0, 0), evil);
    assert_string_equal(mp_db_getn(r, 0, "k"), "evil");
    assert_string_equal(mp_db_getn(r, 0, "n"), "0");
    assert_null(mp_db_get(r, 1, 0)); /* out of range is NULL, not a crash */
    assert_null(mp_db_get(r, 0, 3));
    mp_db_res_free(r);
    assert_int_equal(count(sq("SELECT count(*) FROM @.kv")), 1);
}

static void test_db_exec_null_params(void **state)
{
    mp_db_res_t *r = NULL;
    assert_int_equal(
        mp_db_exec_once(NULL, db, sq("INSERT INTO @.kv (k, v) VALUES ($1, $2)"), 2, MP_DB_PARAMS("nul", NULL)), MP_OK);
    assert_int_equal(mp_db_exec_once(&r, db, sq("SELECT k, v FROM @.kv"), 0, NULL), MP_OK);
    assert_string_equal(mp_db_getn(r, 0, "k"), "nul");
    assert_null(mp_db_get(r, 0, 1));
    assert_null(mp_db_getn(r, 0, "v"));
    assert_null(mp_db_getn(r, 0, "no_such_column"));
    mp_db_res_free(r);
    assert_string_equal(scalar("SELECT $1::text IS NULL", 1, MP_DB_PARAMS(NULL)), "t");
    assert_null(scalar("SELECT $1::text", 1, MP_DB_PARAMS(NULL)));

    assert_int_equal(mp_db_exec_once(&r, db, sq("UPDATE @.kv SET v = 'x' WHERE k = 'none'"), 0, NULL), MP_OK);
    assert_int_equal(mp_db_affected(r), 0);
    mp_db_res_free(r);
}

static void test_db_unique_violation_is_conflict(void **state)
{
    const char *sql = sq("INSERT INTO @.kv (k) VALUES ($1)");
    assert_int_equal(mp_db_exec_once(NULL, db, sql, 1, MP_DB_PARAMS("secret-key-1")), MP_OK);
    assert_int_equal(mp_db_exec_once(NULL, db, sql, 1, MP_DB_PARAMS("secret-key-1")), MP_ECONFLICT);
    assert_non_null(strstr(mp_err_get(), "sqlstate 23505: duplicate key"));
    assert_null(strstr(mp_err_get(), "secret")); /* the DETAIL line quotes the key; it must not leak */
}

static void test_db_constraint_and_data_errors_are_invalid(void **state)
{
    assert_int_equal(mp_db_exec_once(NULL, db, "SELECT $1::integer", 1, MP_DB_PARAMS("secret-not-a-number")),
                     MP_EINVAL);
    assert_non_null(strstr(mp_err_get(), "sqlstate 22P02"));
    assert_null(strstr(mp_err_get(), "secret"));
    assert_int_equal(mp_db_exec_once(NULL, db, "SELECT 1 / 0", 0, NULL), MP_EINVAL);
    assert_int_equal(mp_db_exec_once(NULL, db, sq("INSERT INTO @.kv (k, n) VALUES ('a', NULL)"), 0, NULL), MP_EINVAL);
    assert_non_null(strstr(mp_err_get(), "sqlstate 23502"));
    assert_int_equal(
        mp_db_exec_once(NULL, db, sq("INSERT INTO @.kv (k, n) VALUES ($1, $2)"), 2, MP_DB_PARAMS("a", "-1")),
        MP_EINVAL);
    assert_non_null(strstr(mp_err_get(), "sqlstate 23514"));
    /* anything else (here a syntax error) is ours to fix */
    assert_int_equal(mp_db_exec_once(NULL, db, "SELEC 1", 0, NULL), MP_EINTERNAL);
    assert_non_null(strstr(mp_err_get(), "sqlstate 42601"));
}

static void test_db_statement_timeout_and_session_settings(void **state)
{
    mp_db_t *d;
    mp_db_opts_t o = {.dsn = MP_TEST_PG_DSN(), .statement_timeout_ms = 200, .pool_size = 1};
    assert_int_equal(mp_db_create(&d, &o), MP_OK);
    int64_t t0 = now_ms();
    assert_int_equal(mp_db_exec_once(NULL, d, "SELECT pg_sleep(3)", 0, NULL), MP_ETIMEDOUT);
    assert_true(now_ms() - t0 < 2000);
    assert_non_null(strstr(mp_err_get(), "sqlstate 57014"));
    assert_int_equal(mp_db_exec_once(NULL, d, "SELECT 1", 0, NULL), MP_OK); /* the connection survives */
    mp_db_destroy(d);

    o.statement_timeout_ms = -1;
    assert_int_equal(mp_db_create(&d, &o), MP_OK);
    mp_db_res_t *r;
    assert_int_equal(mp_db_exec_once(&r, d, "SHOW statement_timeout", 0, NULL), MP_OK);
    assert_string_equal(mp_db_get(r, 0, 0), "0");
    mp_db_res_free(r);
    mp_db_destroy(d);

    assert_string_equal(scalar("SHOW statement_timeout", 0, NULL), "5s");
    assert_string_equal(scalar("SHOW application_name", 0, NULL), "test_db");
}

static void test_db_tx_rollback_leaves_nothing(void **state)
{
    mp_db_conn_t *c;
    const char *ins = sq("INSERT INTO @.kv (k) VALUES ($1)");
    assert_int_equal(mp_db_acquire(&c, db, 1000), MP_OK);
    assert_int_equal(mp_db_begin(c), MP_OK);
    assert_int_equal(mp_db_exec(NULL, c, ins, 1, MP_DB_PARAMS("rolled")), MP_OK);
    mp_db_rollback(c);
    assert_int_equal(count(sq("SELECT count(*) FROM @.kv")), 0);

    assert_int_equal(mp_db_begin(c), MP_OK);
    assert_int_equal(mp_db_exec(NULL, c, ins, 1, MP_DB_PARAMS("kept")), MP_OK);
    assert_int_equal(count(sq("SELECT count(*) FROM @.kv")), 0); /* not visible before commit */
    assert_int_equal(mp_db_commit(c), MP_OK);
    assert_int_equal(count(sq("SELECT count(*) FROM @.kv")), 1);
    mp_db_release(c);
}

static void test_db_commit_after_error_is_refused(void **state)
{
    mp_db_conn_t *c;
    assert_int_equal(mp_db_acquire(&c, db, 1000), MP_OK);
    assert_int_equal(mp_db_begin(c), MP_OK);
    assert_int_equal(mp_db_exec(NULL, c, sq("INSERT INTO @.kv (k) VALUES ('a')"), 0, NULL), MP_OK);
    assert_int_equal(mp_db_exec(NULL, c, "SELECT 1 / 0", 0, NULL), MP_EINVAL);
    /* Postgres answers COMMIT of an aborted transaction with "ROLLBACK", not an error */
    assert_int_equal(mp_db_commit(c), MP_EINTERNAL);
    assert_int_equal(count(sq("SELECT count(*) FROM @.kv")), 0);
    assert_int_equal(mp_db_exec(NULL, c, "SELECT 1", 0, NULL), MP_OK);
    mp_db_release(c);
}

static char *backend_pid(mp_db_conn_t *c)
{
    mp_db_res_t *r;
    assert_int_equal(mp_db_exec(&r, c, "SELECT pg_backend_pid()", 0, NULL), MP_OK);
    char *pid = strdup(mp_db_get(r, 0, 0));
    mp_db_res_free(r);
    assert_true(ngarbage < 256);
    garbage[ngarbage++] = pid;
    return pid;
}

static void test_db_release_rolls_back_open_tx(void **state)
{
    /* one slot, so the next checkout is the same session: had the transaction survived, it would see its row */
    mp_db_t *d;
    mp_db_conn_t *c;
    mp_db_res_t *r;
    mp_db_opts_t o = {.dsn = MP_TEST_PG_DSN(), .pool_size = 1};
    assert_int_equal(mp_db_create(&d, &o), MP_OK);
    for (int raw = 0; raw < 2; raw++) {
        assert_int_equal(mp_db_acquire(&c, d, 1000), MP_OK);
        const char *pid = backend_pid(c);
        /* raw BEGIN bypasses the in_tx flag; release must still notice */
        assert_int_equal(raw ? mp_db_exec(NULL, c, "BEGIN", 0, NULL) : mp_db_begin(c), MP_OK);
        assert_int_equal(mp_db_exec(NULL, c, sq("INSERT INTO @.kv (k) VALUES ('open')"), 0, NULL), MP_OK);
        mp_db_release(c);
        assert_int_equal(mp_db_acquire(&c, d, 1000), MP_OK);
        assert_string_equal(backend_pid(c), pid); /* rolled back and kept, not thrown away */
        assert_int_equal(mp_db_exec(&r, c, sq("SELECT count(*) FROM @.kv"), 0, NULL), MP_OK);
        assert_string_equal(mp_db_get(r, 0, 0), "0");
        mp_db_res_free(r);
        mp_db_release(c);
    }
    mp_db_destroy(d);
}

typedef struct waiter {
    mp_db_t *db;
    mp_status_t st;
    int64_t waited;
} waiter_t;

static void *acquire_thread(void *arg)
{
    waiter_t *w = arg;
    mp_db_conn_t *c;
    int64_t t0 = now_ms();
    w->st = mp_db_acquire(&c, w->db, 3000);
    w->waited = now_ms() - t0;
    if (w->st == MP_OK)
        mp_db_release(c);
    return NULL;
}

static void test_db_pool_exhaustion_times_out(void **state)
{
    mp_db_t *d;
    mp_db_conn_t *a, *b, *c;
    int open, busy;
    mp_db_opts_t o = {.dsn = MP_TEST_PG_DSN(), .pool_size = 2};
    assert_int_equal(mp_db_create(&d, &o), MP_OK);
    mp_db_stats(d, &open, &busy);
    assert_int_equal(open, 0); /* lazy */
    assert_int_equal(mp_db_acquire(&a, d, 1000), MP_OK);
    assert_int_equal(mp_db_acquire(&b, d, 1000), MP_OK);
    mp_db_stats(d, &open, &busy);
    assert_int_equal(open, 2);
    assert_int_equal(busy, 2);
    int64_t t0 = now_ms();
    assert_int_equal(mp_db_acquire(&c, d, 200), MP_ETIMEDOUT);
    int64_t took = now_ms() - t0;
    assert_true(took >= 190 && took < 1000);

    /* a waiter is woken by a release, long before its timeout */
    waiter_t w = {.db = d};
    pthread_t th;
    pthread_create(&th, NULL, acquire_thread, &w);
    usleep(100 * 1000);
    mp_db_release(a);
    pthread_join(th, NULL);
    assert_int_equal(w.st, MP_OK);
    assert_true(w.waited >= 50 && w.waited < 1500);
    mp_db_release(b);
    mp_db_stats(d, &open, &busy);
    assert_int_equal(open, 2);
    assert_int_equal(busy, 0);
    mp_db_destroy(d);
}

static void test_db_ping_ok_even_with_pool_busy(void **state)
{
    mp_db_t *d;
    mp_db_conn_t *c;
    mp_db_opts_t o = {.dsn = MP_TEST_PG_DSN(), .pool_size = 1};
    assert_int_equal(mp_db_create(&d, &o), MP_OK);
    assert_int_equal(mp_db_ping(d, 1000), MP_OK);
    assert_int_equal(mp_db_acquire(&c, d, 1000), MP_OK);
    assert_int_equal(mp_db_ping(d, 1000), MP_OK); /* over a fresh connection */
    mp_db_release(c);
    mp_db_destroy(d);
}

static void test_db_ping_unreachable_is_unavailable_quickly(void **state)
{
    char dsn[160];
    mp_db_t *d;
    mp_db_conn_t *c;
    int open, busy;
    snprintf(dsn, sizeof(dsn), "host=127.0.0.1 port=%d dbname=moonport user=moonport password=hunter2", free_port());
    mp_db_opts_t o = {.dsn = dsn, .connect_timeout_s = 10};
    assert_int_equal(mp_db_create(&d, &o), MP_OK);
    int64_t t0 = now_ms();
    assert_int_equal(mp_db_ping(d, 1000), MP_EUNAVAIL);
    assert_true(now_ms() - t0 < 3000);
    assert_int_equal(mp_db_acquire(&c, d, 1000), MP_EUNAVAIL);
    assert_null(strstr(mp_err_get(), "hunter2"));
    mp_db_stats(d, &open, &busy);
    assert_int_equal(open + busy, 0); /* the failed slot is left empty and free */
    mp_db_destroy(d);

    /* a server that accepts and then never answers: our deadline holds, not connect_timeout (10 s here; libpq's
     * own minimum would be 2 s) */
    int port, silent = silent_listener(&port);
    snprintf(dsn, sizeof(dsn), "host=127.0.0.1 port=%d dbname=moonport user=moonport", port);
    assert_int_equal(mp_db_create(&d, &o), MP_OK);
    t0 = now_ms();
    assert_int_equal(mp_db_ping(d, 300), MP_EUNAVAIL);
    int64_t took = now_ms() - t0;
    assert_true(took >= 250 && took < 1000);
    mp_db_destroy(d);
    close(silent);
}

static void test_db_bad_dsn_is_invalid(void **state)
{
    mp_db_t *d = NULL;
    mp_db_opts_t o = {.dsn = "host=127.0.0.1 password=hunter2 bogus"};
    assert_int_equal(mp_db_create(&d, &o), MP_EINVAL);
    assert_null(d);
    assert_null(strstr(mp_err_get(), "hunter2"));
    o.dsn = "postgresql://u:hunter2@127.0.0.1:5432/db?nosuchoption=1";
    assert_int_equal(mp_db_create(&d, &o), MP_EINVAL);
}

static void test_db_recovers_after_backend_terminated(void **state)
{
    mp_db_t *d;
    mp_db_conn_t *c;
    mp_db_res_t *r;
    int open, busy;
    mp_db_opts_t o = {.dsn = MP_TEST_PG_DSN(), .pool_size = 1};
    assert_int_equal(mp_db_create(&d, &o), MP_OK);
    const char *kill = "SELECT pg_terminate_backend($1::integer, 5000)"; /* waits until the backend is gone */

    /* killed while checked out: the next statement fails, and the next checkout reconnects */
    assert_int_equal(mp_db_acquire(&c, d, 1000), MP_OK);
    const char *pid1 = backend_pid(c);
    assert_string_equal(scalar(kill, 1, MP_DB_PARAMS(pid1)), "t");
    assert_int_equal(mp_db_exec(NULL, c, "SELECT 1", 0, NULL), MP_EUNAVAIL);
    assert_int_equal(mp_db_exec(NULL, c, "SELECT 1", 0, NULL), MP_EUNAVAIL); /* stays broken until released */
    mp_db_release(c);
    mp_db_stats(d, &open, &busy);
    assert_int_equal(open, 0);
    assert_int_equal(mp_db_acquire(&c, d, 1000), MP_OK);
    const char *pid2 = backend_pid(c);
    assert_string_not_equal(pid1, pid2);
    mp_db_release(c);

    /* killed while idle in the pool: noticed at checkout, so the caller sees no error at all */
    assert_string_equal(scalar(kill, 1, MP_DB_PARAMS(pid2)), "t");
    assert_int_equal(mp_db_exec_once(&r, d, "SELECT pg_backend_pid()", 0, NULL), MP_OK);
    assert_string_not_equal(mp_db_get(r, 0, 0), pid2);
    mp_db_res_free(r);
    mp_db_destroy(d);
}

/* ---- migrations --------------------------------------------------------- */

/* A NULL-terminated file table for schema `sch`, from name/template pairs; strings freed by the teardown. */
static mp_embed_file_t *files_for(mp_embed_file_t *out, const char *sch, const char *const *pairs)
{
    int i = 0;
    for (; pairs[2 * i]; i++) {
        out[i].name = pairs[2 * i];
        out[i].data = sqs(sch, pairs[2 * i + 1]);
        out[i].len = strlen(out[i].data);
    }
    out[i] = (mp_embed_file_t){0};
    return out;
}

static const char *mschema(int n)
{
    char s[48];
    snprintf(s, sizeof(s), "%s_m%d", schema, n);
    return sqs(s, "@");
}

static const char *const init_sql = "CREATE TABLE @.items (id serial PRIMARY KEY, name text NOT NULL)";
static const char *const qty_sql = "ALTER TABLE @.items ADD COLUMN qty integer NOT NULL DEFAULT 0;\n"
                                   "INSERT INTO @.items (name, qty) VALUES ('seed; ''quoted''', 2);";

static void test_db_migrate_applies_in_order_and_is_idempotent(void **state)
{
    const char *m = mschema(1);
    mp_embed_file_t f[5];
    /* listed out of order (0002 needs 0001's table), next to a service descriptor, which is not a migration */
    const char *const v1[] = {"0002_qty.sql", qty_sql, "service.yaml", "name: x", "0001_init.sql", init_sql, NULL};
    FILE *log = tmpfile();
    char buf[4096] = "";
    mp_log_set_fd(fileno(log));
    assert_int_equal(mp_db_migrate(db, m, files_for(f, m, v1)), MP_OK);
    assert_int_equal(mp_db_migrate(db, m, f), MP_OK); /* a second run applies nothing */
    mp_log_set_fd(2);
    rewind(log);
    assert_true(fread(buf, 1, sizeof(buf) - 1, log) > 0);
    fclose(log);
    const char *l1 = strstr(buf, "\"migration applied\"");
    assert_non_null(l1);
    assert_non_null(strstr(l1, "\"version\":\"1\""));
    const char *l2 = strstr(l1 + 1, "\"migration applied\"");
    assert_non_null(l2);
    assert_non_null(strstr(l2, "\"version\":\"2\""));
    assert_null(strstr(l2 + 1, "\"migration applied\""));

    mp_db_res_t *r;
    assert_int_equal(
        mp_db_exec_once(&r, db, sqs(m, "SELECT version, name FROM @.schema_migrations ORDER BY 1"), 0, NULL), MP_OK);
    assert_int_equal(mp_db_rows(r), 2);
    assert_string_equal(mp_db_get(r, 0, 1), "0001_init.sql");
    assert_string_equal(mp_db_getn(r, 1, "name"), "0002_qty.sql");
    mp_db_res_free(r);
    assert_string_equal(scalar(sqs(m, "SELECT name || qty FROM @.items"), 0, NULL), "seed; 'quoted'2");

    /* append-only growth: only the new file runs */
    const char *const v2[] = {"0001_init.sql",
                              init_sql,
                              "0002_qty.sql",
                              qty_sql,
                              "0010_more.sql",
                              "INSERT INTO @.items (name) VALUES ('ten')",
                              NULL};
    assert_int_equal(mp_db_migrate(db, m, files_for(f, m, v2)), MP_OK);
    assert_int_equal(count(sqs(m, "SELECT count(*) FROM @.items")), 2);
    assert_int_equal(count(sqs(m, "SELECT max(version) FROM @.schema_migrations")), 10);
}

static void test_db_migrate_rejects_renamed_migration(void **state)
{
    const char *m = mschema(2);
    mp_embed_file_t f[3];
    const char *const v1[] = {"0001_init.sql", init_sql, NULL};
    const char *const v2[] = {"0001_renamed.sql", init_sql, "0002_qty.sql", qty_sql, NULL};
    assert_int_equal(mp_db_migrate(db, m, files_for(f, m, v1)), MP_OK);
    assert_int_equal(mp_db_migrate(db, m, files_for(f, m, v2)), MP_EINVAL);
    assert_non_null(strstr(mp_err_get(), "migration 1 was applied as 0001_init.sql"));
    assert_int_equal(count(sqs(m, "SELECT count(*) FROM @.schema_migrations")), 1);
}

static void test_db_migrate_rejects_bad_names(void **state)
{
    const char *m = mschema(3);
    const char *bad[] = {"1.sql",          "0001-init.sql",       "init_0001.sql", "0001_.sql",
                         "0001_in it.sql", "99999999999_big.sql", "0001_a/b.sql",  ".sql"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        mp_embed_file_t f[] = {{"0001_init.sql", "SELECT 1", 8}, {bad[i], "SELECT 1", 8}, {0}};
        assert_int_equal(mp_db_migrate(db, m, f), MP_EINVAL);
        assert_non_null(strstr(mp_err_get(), bad[i]));
    }
    mp_embed_file_t dup[] = {{"0001_a.sql", "SELECT 1", 8}, {"1_b.sql", "SELECT 1", 8}, {0}};
    assert_int_equal(mp_db_migrate(db, m, dup), MP_EINVAL);
    /* names are checked before anything runs: not even the schema exists */
    assert_null(scalar("SELECT to_regnamespace($1)", 1, MP_DB_PARAMS(m)));

    const char *bad_schema[] = {"", "Bad", "1abc", "a-b", "a;drop schema public", "a\"b"};
    mp_embed_file_t ok[] = {{"0001_init.sql", "SELECT 1", 8}, {0}};
    for (size_t i = 0; i < sizeof(bad_schema) / sizeof(*bad_schema); i++)
        assert_int_equal(mp_db_migrate(db, bad_schema[i], ok), MP_EINVAL);
}

static void test_db_migrate_failure_leaves_no_partial_state(void **state)
{
    const char *m = mschema(4);
    mp_embed_file_t f[3];
    const char *const v1[] = {"0001_init.sql", init_sql, "0002_half.sql",
                              "CREATE TABLE @.half (x integer); INSERT INTO @.half VALUES (1); SELECT 1 / 0;", NULL};
    assert_int_equal(mp_db_migrate(db, m, files_for(f, m, v1)), MP_EINVAL);
    assert_non_null(strstr(mp_err_get(), "0002_half.sql"));
    assert_non_null(strstr(mp_err_get(), "sqlstate 22012"));
    assert_null(scalar("SELECT to_regclass($1)", 1, MP_DB_PARAMS(sqs(m, "@.half"))));
    assert_int_equal(count(sqs(m, "SELECT max(version) FROM @.schema_migrations")), 1);

    /* fixed, the same file applies: a failed migration was never recorded */
    const char *const v2[] = {"0001_init.sql", init_sql, "0002_half.sql",
                              "CREATE TABLE @.half (x integer); INSERT INTO @.half VALUES (1);", NULL};
    assert_int_equal(mp_db_migrate(db, m, files_for(f, m, v2)), MP_OK);
    assert_int_equal(count(sqs(m, "SELECT count(*) FROM @.half")), 1);
}

typedef struct replica {
    const char *schema;
    const mp_embed_file_t *files;
    mp_status_t st;
} replica_t;

static void *migrate_thread(void *arg)
{
    replica_t *r = arg;
    r->st = mp_db_migrate(db, r->schema, r->files);
    return NULL;
}

static void test_db_migrate_concurrent_replicas_apply_once(void **state)
{
    /* without the advisory lock, racing CREATE SCHEMA / INSERT version would fail some of these */
    const char *m = mschema(5);
    mp_embed_file_t f[3];
    const char *const v[] = {"0001_init.sql", init_sql, "0002_qty.sql", qty_sql, NULL};
    files_for(f, m, v);
    /* log.c keeps a per-thread line buffer that outlives the thread; stay quiet so the leak checker stays useful */
    mp_log_init(NULL, MP_LOG_WARN);
    replica_t r[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (replica_t){.schema = m, .files = f};
        pthread_create(&th[i], NULL, migrate_thread, &r[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].st, MP_OK);
    }
    mp_log_init(NULL, MP_LOG_INFO);
    assert_int_equal(count(sqs(m, "SELECT count(*) FROM @.items")), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_db_exec_params_round_trip_verbatim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_exec_null_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_unique_violation_is_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_constraint_and_data_errors_are_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_statement_timeout_and_session_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_tx_rollback_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_commit_after_error_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_release_rolls_back_open_tx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_pool_exhaustion_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_ping_ok_even_with_pool_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_ping_unreachable_is_unavailable_quickly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_bad_dsn_is_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_recovers_after_backend_terminated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_migrate_applies_in_order_and_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_migrate_rejects_renamed_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_migrate_rejects_bad_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_migrate_failure_leaves_no_partial_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_migrate_concurrent_replicas_apply_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
