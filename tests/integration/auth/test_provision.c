/*
 * Integration tests for registration's profile provisioning: the auth role
 * runs in this process (integration/inproc.h) against the harness's NATS
 * and Postgres, and the test itself plays the User service on
 * user.v1.provision, so it can answer, fail, or not be there at all.
 *
 * The rule under test: no account exists without a profile. Registration
 * commits the account only after user.v1.provision answered 200; without a
 * responder, or with an error, it answers 503 and the account is gone.
 *
 * No user role may run meanwhile (the harness runs integration tests before
 * it starts moonport; the only other in-process role is product).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include "mp/bus.h"
#include "mp/bus_serve.h"
#include "mp/db.h"
#include "mp/reqctx.h"
#include "integration/inproc.h"

static mp_bus_t *bus;
static mp_db_t *db;
static _Atomic int provision_status = 200;
static char provisioned[512]; /* the last request body the fake User service saw */

/* ---- the fake User service ------------------------------------------------------------------ */

static void on_provision(void *arg, mp_msg_t *req, int worker)
{
    snprintf(provisioned, sizeof(provisioned), "%.*s", (int)mp_msg_len(req), mp_msg_data(req));
    int status = atomic_load(&provision_status);
    const char *body = status == 200 ? "{\"created\":true}" : "{\"status\":500}";
    mp_bus_reply(bus, req, status, body, strlen(body), NULL, 0);
}

/* ---- helpers ----------------------------------------------------------------------------- */

static int reg(json_t **out, const char *email)
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"email\":\"%s\",\"password\":\"correct horse battery staple\",\"display_name\":\"Prov Test\"}", email);
    return mp_test_request(out, bus, "auth.v1.register", body, (mp_bus_ctx_t){0});
}

static int accounts_with(const char *email)
{
    mp_db_res_t *r = NULL;
    assert_int_equal(
        mp_db_exec_once(&r, db, "SELECT count(*) FROM auth.users WHERE email = $1", 1, MP_DB_PARAMS(email)), MP_OK);
    int n = atoi(mp_db_get(r, 0, 0));
    mp_db_res_free(r);
    return n;
}

static void new_email(char out[64])
{
    char hex[17];
    mp_rand_hex(hex, 8);
    snprintf(out, 64, "prov-%s@example.com", hex);
}

static int setup(void **state)
{
    char extra[256];
    snprintf(extra, sizeof(extra), "auth:\n  keys_dir: /tmp/mp-inproc-keys-%d\n  scrypt:\n    log_n: 10\n", getpid());
    assert_int_equal(mp_serve_test_start("auth", extra), 0);
    mp_bus_opts_t o = {.url = MP_TEST_NATS_URL(), .name = "test_provision", .send_asap = true};
    assert_int_equal(mp_bus_connect(&bus, &o), MP_OK);
    mp_db_opts_t d = {.dsn = MP_TEST_PG_DSN(), .pool_size = 2};
    assert_int_equal(mp_db_create(&db, &d), MP_OK);
    for (int i = 0; i < 600; i++) {
        mp_bus_call_t c = {.subject = "auth.v1.jwks", .body = "{}", .len = 2, .timeout_ms = 1000};
        mp_msg_t *reply = NULL;
        if (mp_bus_request(&reply, bus, &c) == MP_OK) {
            mp_msg_destroy(reply);
            return 0;
        }
        usleep(100 * 1000);
    }
    fail_msg("the auth role did not answer within 60 s");
    return -1;
}

static int teardown(void **state)
{
    char cmd[128];
    mp_db_destroy(db);
    mp_bus_destroy(bus);
    assert_int_equal(mp_serve_test_stop(), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf /tmp/mp-inproc-keys-%d", getpid());
    assert_int_equal(system(cmd), 0);
    nats_CloseAndWait(2000);
    return 0;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_provision_without_user_service_leaves_no_account(void **state)
{
    char email[64];
    json_t *r = NULL;
    new_email(email);
    assert_int_equal(reg(&r, email), 503);
    assert_string_equal(json_string_value(json_object_get(r, "detail")),
                        "a dependency is unavailable, try again shortly");
    json_decref(r);
    assert_int_equal(accounts_with(email), 0);
}

static void test_provision_ok_commits_the_account_with_its_profile_request(void **state)
{
    mp_bus_server_t *srv;
    mp_bus_server_opts_t so = {.workers = 1, .name = "fake-user"};
    char email[64];
    json_t *r = NULL;
    assert_int_equal(mp_bus_server_create(&srv, bus, &so), MP_OK);
    assert_int_equal(mp_bus_server_add(srv, "user.v1.provision", "user", on_provision, NULL), MP_OK);
    natsConnection_Flush(mp_bus_conn(bus));

    atomic_store(&provision_status, 200);
    new_email(email);
    assert_int_equal(reg(&r, email), 201);
    const char *user_id = json_string_value(json_object_get(r, "user_id"));
    json_t *sent = json_loads(provisioned, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(sent, "user_id")), user_id);
    assert_string_equal(json_string_value(json_object_get(sent, "email")), email);
    assert_string_equal(json_string_value(json_object_get(sent, "display_name")), "Prov Test");
    json_decref(sent);
    json_decref(r);
    assert_int_equal(accounts_with(email), 1);

    /* the User service answering an error is as bad as its absence */
    atomic_store(&provision_status, 500);
    new_email(email);
    assert_int_equal(reg(NULL, email), 503);
    assert_int_equal(accounts_with(email), 0);
    mp_bus_server_destroy(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_provision_without_user_service_leaves_no_account),
        cmocka_unit_test(test_provision_ok_commits_the_account_with_its_profile_request),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
