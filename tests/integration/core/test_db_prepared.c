/*
 * Integration tests for mp_db's prepared statements and deadlines against a
 * real Postgres: a text is prepared once per connection and run by name
 * after; a new connection (the old one killed, as a Postgres restart does)
 * prepares it again; a table changed under a prepared statement (a
 * migration by another replica) is survived; a statement running past the
 * caller's deadline is cancelled and its connection stays in the pool.
 *
 * Everything lives in the schema tp_<pid>, dropped at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "mp/db.h"
#include "integration/testenv.h"

static mp_db_t *admin; /* for setup and for changing tables behind the tested pool's back */
static char schema[32];

static int64_t clock_ms(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* `tmpl` with '@' replaced by the schema, in `out`. */
static const char *sq(char out[512], const char *tmpl)
{
    size_t n = 0;
    for (const char *p = tmpl; *p && n < 480; p++) {
        if (*p == '@')
            n += (size_t)snprintf(out + n, 512 - n, "%s", schema);
        else
            out[n++] = *p;
    }
    out[n] = '\0';
    return out;
}

static void run_on(mp_db_t *d, const char *tmpl)
{
    char sql[512];
    assert_int_equal(mp_db_exec_once(NULL, d, sq(sql, tmpl), 0, NULL), MP_OK);
}

/* How many statements with exactly this text the session of `c` has prepared. */
static int prepared_here(mp_db_conn_t *c, const char *text)
{
    mp_db_res_t *r;
    assert_int_equal(
        mp_db_exec(&r, c, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", 1, MP_DB_PARAMS(text)),
        MP_OK);
    int n = atoi(mp_db_get(r, 0, 0));
    mp_db_res_free(r);
    return n;
}

static uint64_t prepared_count(mp_db_t *d)
{
    mp_db_counters_t c;
    mp_db_counters(d, &c);
    return c.prepared;
}

/* A pool of one connection, so every checkout is the same session (until the server ends it). */
static mp_db_t *one_session(void)
{
    mp_db_t *d;
    mp_db_opts_t o = {.dsn = MP_TEST_PG_DSN(), .pool_size = 1};
    assert_int_equal(mp_db_create(&d, &o), MP_OK);
    return d;
}

/* The server process behind `c`: the session's identity. */
static void session_pid(char out[16], mp_db_conn_t *c)
{
    mp_db_res_t *r;
    assert_int_equal(mp_db_exec(&r, c, "SELECT pg_backend_pid()::text", 0, NULL), MP_OK);
    snprintf(out, 16, "%s", mp_db_get(r, 0, 0));
    mp_db_res_free(r);
}

static int group_setup(void **state)
{
    snprintf(schema, sizeof(schema), "tp_%d", (int)getpid());
    mp_db_opts_t o = {.dsn = MP_TEST_PG_DSN(), .app_name = "test_db_prepared", .no_prepare = true};
    assert_int_equal(mp_db_create(&admin, &o), MP_OK);
    run_on(admin, "CREATE SCHEMA @");
    run_on(admin, "CREATE TABLE @.kv (k text PRIMARY KEY, v text)");
    run_on(admin, "INSERT INTO @.kv VALUES ('a', 'one'), ('b', 'two')");
    return 0;
}

static int group_teardown(void **state)
{
    run_on(admin, "DROP SCHEMA IF EXISTS @ CASCADE");
    mp_db_destroy(admin);
    return 0;
}

static void test_statement_is_prepared_once_per_connection(void **state)
{
    mp_db_t *d;
    mp_db_conn_t *c, *c2;
    mp_db_res_t *r;
    char sql[512];
    mp_db_opts_t o = {.dsn = MP_TEST_PG_DSN(), .pool_size = 2};
    assert_int_equal(mp_db_create(&d, &o), MP_OK);
    sq(sql, "SELECT v FROM @.kv WHERE k = $1");

    assert_int_equal(mp_db_acquire(&c, d, 1000), MP_OK);
    const char *keys[] = {"a", "b", "a"}, *want[] = {"one", "two", "one"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mp_db_exec(&r, c, sql, 1, MP_DB_PARAMS(keys[i])), MP_OK);
        assert_string_equal(mp_db_get(r, 0, 0), want[i]);
        mp_db_res_free(r);
    }
    assert_int_equal(prepared_count(d), 1);
    assert_int_equal(prepared_here(c, sql), 1);
    assert_int_equal(prepared_here(c, sql), 1);
    /* the pg_prepared_statements query was prepared once too: two in all, however often they ran */
    assert_int_equal(prepared_count(d), 2);

    /* another connection is another session: it prepares the text for itself, once */
    assert_int_equal(mp_db_acquire(&c2, d, 1000), MP_OK);
    assert_int_equal(mp_db_exec(NULL, c2, sql, 1, MP_DB_PARAMS("a")), MP_OK);
    assert_int_equal(mp_db_exec(NULL, c2, sql, 1, MP_DB_PARAMS("b")), MP_OK);
    assert_int_equal(prepared_here(c2, sql), 1);
    assert_int_equal(prepared_count(d), 4);
    mp_db_release(c2);
    mp_db_release(c);
    mp_db_destroy(d);
}

static void test_prepared_again_on_a_new_connection(void **state)
{
    mp_db_t *d;
    mp_db_conn_t *c;
    mp_db_res_t *r;
    char sql[512];
    d = one_session();
    sq(sql, "SELECT v FROM @.kv WHERE k = $1");
    assert_int_equal(mp_db_acquire(&c, d, 1000), MP_OK);
    char pid[16];
    session_pid(pid, c);
    assert_int_equal(mp_db_exec(NULL, c, sql, 1, MP_DB_PARAMS("a")), MP_OK);
    mp_db_release(c);

    /* the server ends the session, and its prepared statements with it (what a Postgres restart does) */
    assert_int_equal(
        mp_db_exec_once(NULL, admin, "SELECT pg_terminate_backend($1::integer, 5000)", 1, MP_DB_PARAMS(pid)), MP_OK);
    assert_int_equal(mp_db_acquire(&c, d, 1000), MP_OK); /* noticed at checkout: a fresh session */
    assert_int_equal(mp_db_exec(&r, c, sql, 1, MP_DB_PARAMS("b")), MP_OK);
    assert_string_equal(mp_db_get(r, 0, 0), "two");
    mp_db_res_free(r);
    assert_int_equal(prepared_here(c, sql), 1);
    mp_db_release(c);
    mp_db_destroy(d);
}

static void test_table_changed_under_a_prepared_statement(void **state)
{
    mp_db_t *d;
    mp_db_conn_t *c;
    mp_db_res_t *r;
    char sql[512];
    d = one_session();
    run_on(admin, "CREATE TABLE @.wide (id int PRIMARY KEY, a text)");
    run_on(admin, "INSERT INTO @.wide VALUES (1, 'x')");
    sq(sql, "SELECT * FROM @.wide WHERE id = $1");
    assert_int_equal(mp_db_exec_once(&r, d, sql, 1, MP_DB_PARAMS("1")), MP_OK);
    mp_db_res_free(r);

    /* a migration elsewhere adds a column: the prepared plan's result type is stale ("cached plan must not change
     * result type"); outside a transaction the statement is prepared afresh and the caller sees nothing */
    run_on(admin, "ALTER TABLE @.wide ADD COLUMN b text NOT NULL DEFAULT 'new'");
    assert_int_equal(mp_db_exec_once(&r, d, sql, 1, MP_DB_PARAMS("1")), MP_OK);
    assert_string_equal(mp_db_getn(r, 0, "b"), "new");
    mp_db_res_free(r);

    /* inside a transaction the error has aborted it: the caller gets a retryable error, and the next use works */
    run_on(admin, "ALTER TABLE @.wide ADD COLUMN c int NOT NULL DEFAULT 7");
    assert_int_equal(mp_db_acquire(&c, d, 1000), MP_OK);
    assert_int_equal(mp_db_begin(c), MP_OK);
    assert_int_equal(mp_db_exec(NULL, c, sql, 1, MP_DB_PARAMS("1")), MP_EUNAVAIL);
    mp_db_release(c);
    assert_int_equal(mp_db_exec_once(&r, d, sql, 1, MP_DB_PARAMS("1")), MP_OK);
    assert_string_equal(mp_db_getn(r, 0, "c"), "7");
    mp_db_res_free(r);
    mp_db_destroy(d);
}

static void test_deadline_cancels_the_statement_and_keeps_the_connection(void **state)
{
    mp_db_t *d;
    mp_db_conn_t *c;
    mp_db_res_t *r;
    mp_db_counters_t k;
    d = one_session();
    assert_int_equal(mp_db_acquire(&c, d, 1000), MP_OK);
    char pid[16];
    session_pid(pid, c);

    mp_db_deadline(clock_ms(CLOCK_REALTIME) + 400);
    int64_t t0 = clock_ms(CLOCK_MONOTONIC);
    assert_int_equal(mp_db_exec(NULL, c, "SELECT pg_sleep(5)", 0, NULL), MP_ETIMEDOUT);
    int64_t took = clock_ms(CLOCK_MONOTONIC) - t0;
    assert_true(took >= 350 && took < 2000);
    assert_non_null(strstr(mp_err_get(), "deadline"));

    /* past the deadline a statement still gets its short grace, so a handler's clean-up runs */
    char again[16];
    session_pid(again, c);
    assert_string_equal(again, pid); /* the same session: cancelled, not torn down */
    t0 = clock_ms(CLOCK_MONOTONIC);
    assert_int_equal(mp_db_exec(NULL, c, "SELECT pg_sleep(3)", 0, NULL), MP_ETIMEDOUT);
    assert_true(clock_ms(CLOCK_MONOTONIC) - t0 < 1500);
    mp_db_deadline(0);
    mp_db_release(c);

    /* the one slot is free again for the next caller, on the same session */
    assert_int_equal(mp_db_exec_once(&r, d, "SELECT pg_backend_pid()::text", 0, NULL), MP_OK);
    assert_string_equal(mp_db_get(r, 0, 0), pid);
    mp_db_res_free(r);
    mp_db_counters(d, &k);
    assert_int_equal(k.cancelled, 2);
    assert_int_equal(k.busy, 0);
    mp_db_destroy(d);
}

static void test_commit_is_never_cancelled(void **state)
{
    mp_db_t *d;
    mp_db_conn_t *c;
    char sql[512];
    d = one_session();
    assert_int_equal(mp_db_acquire(&c, d, 1000), MP_OK);
    assert_int_equal(mp_db_begin(c), MP_OK);
    assert_int_equal(mp_db_exec(NULL, c, sq(sql, "INSERT INTO @.kv VALUES ('late', 'x')"), 0, NULL), MP_OK);
    mp_db_deadline(clock_ms(CLOCK_REALTIME) - 10000); /* long gone */
    assert_int_equal(mp_db_commit(c), MP_OK);
    mp_db_deadline(0);
    mp_db_release(c);
    mp_db_res_t *r;
    assert_int_equal(mp_db_exec_once(&r, d, sq(sql, "SELECT v FROM @.kv WHERE k = 'late'"), 0, NULL), MP_OK);
    assert_int_equal(mp_db_rows(r), 1);
    mp_db_res_free(r);
    mp_db_destroy(d);
}

static void test_pool_waits_are_counted(void **state)
{
    mp_db_t *d;
    mp_db_conn_t *c, *c2;
    mp_db_counters_t k;
    d = one_session();
    assert_int_equal(mp_db_acquire(&c, d, 1000), MP_OK);
    assert_int_equal(mp_db_acquire(&c2, d, 100), MP_ETIMEDOUT);
    mp_db_counters(d, &k);
    assert_int_equal(k.size, 1);
    assert_int_equal(k.busy, 1);
    assert_int_equal(k.waits, 1);
    assert_int_equal(k.timeouts, 1);
    assert_true(k.wait_seconds >= 0.09 && k.wait_seconds < 1.0);
    mp_db_release(c);
    mp_db_destroy(d);
}

static void test_no_prepare_runs_unnamed(void **state)
{
    mp_db_conn_t *c;
    char sql[512];
    sq(sql, "SELECT v FROM @.kv WHERE k = $1");
    assert_int_equal(mp_db_acquire(&c, admin, 1000), MP_OK);
    assert_int_equal(mp_db_exec(NULL, c, sql, 1, MP_DB_PARAMS("a")), MP_OK);
    assert_int_equal(prepared_here(c, sql), 0);
    mp_db_release(c);
    assert_int_equal(prepared_count(admin), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statement_is_prepared_once_per_connection),
        cmocka_unit_test(test_prepared_again_on_a_new_connection),
        cmocka_unit_test(test_table_changed_under_a_prepared_statement),
        cmocka_unit_test(test_deadline_cancels_the_statement_and_keeps_the_connection),
        cmocka_unit_test(test_commit_is_never_cancelled),
        cmocka_unit_test(test_pool_waits_are_counted),
        cmocka_unit_test(test_no_prepare_runs_unnamed),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
