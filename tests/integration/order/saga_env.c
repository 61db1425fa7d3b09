/*
 * saga_env.c: starting and stopping the roles in-process for Order's
 * integration tests (integration/inproc.h: SIGTERM drains them as an
 * orchestrator stops a pod), and the helpers they share (see saga_env.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "mp/json.h"
#include "mp/reqctx.h"
#include "integration/inproc.h"
#include "saga_env.h"

fake_product_t *env_product;
mp_db_t *env_db;
mp_bus_t *env_bus;
const char *const env_p1 = "0b7e0a8e-1111-4c1a-9d3e-000000000001";
const char *const env_p2 = "0b7e0a8e-2222-4c1a-9d3e-000000000002";
const char *const env_usd = "0b7e0a8e-3333-4c1a-9d3e-000000000003";

static char dir[64], notes[96];

int env_setup(void **state)
{
    char extra[512];
    snprintf(dir, sizeof(dir), "/tmp/mp-saga-%d", (int)getpid());
    snprintf(notes, sizeof(notes), "%s/notifications", dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(extra, sizeof(extra),
             "payment:\n  retry_base: 20ms\n  retry_max: 100ms\n  sandbox:\n    slow: 2s\n"
             "notification:\n  adapter: file\n  file_dir: %s\n  retry_base: 50ms\n"
             "order:\n  abandoned_claim_after: 2s\n",
             notes);
    /* first: it blocks the stop signals before any other thread exists */
    assert_int_equal(mp_serve_test_start("order,payment,notification", extra), 0);

    mp_bus_opts_t bo = {.url = MP_TEST_NATS_URL(), .name = "test_saga", .send_asap = true};
    assert_int_equal(mp_bus_connect(&env_bus, &bo), MP_OK);
    mp_db_opts_t dbo = {.dsn = MP_TEST_PG_DSN(), .app_name = "test_saga"};
    assert_int_equal(mp_db_create(&env_db, &dbo), MP_OK);
    env_product = fake_product_start(env_bus);
    fake_product_add(env_product, env_p1, "MUG-1", "Moon mug", 1250, "EUR", 100);
    fake_product_add(env_product, env_p2, "PEN-2", "Rocket pen", 399, "EUR", 100);
    fake_product_add(env_product, env_usd, "CAP-3", "Crater cap", 500, "USD", 100);

    /* ready when order answers; the consumers attach to their durables on their own threads */
    char user[37];
    env_uuid(user);
    for (int i = 0; i < 600; i++) {
        if (mp_test_request(NULL, env_bus, "order.v1.list", "{}", (mp_bus_ctx_t){.auth_sub = user}) == 200)
            return 0;
        assert_int_equal(mp_inproc_rc, -1); /* it has not exited */
        usleep(50 * 1000);
    }
    fail_msg("the roles did not start within 30 s");
    return 0;
}

int env_teardown(void **state)
{
    assert_int_equal(mp_serve_test_stop(), 0); /* drained and stopped cleanly */
    fake_product_stop(env_product);
    mp_db_destroy(env_db);
    mp_bus_destroy(env_bus);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

void env_uuid(char out[37])
{
    char h[33];
    mp_rand_hex(h, 16);
    snprintf(out, 37, "%.8s-%.4s-4%.3s-8%.3s-%.12s", h, h + 8, h + 13, h + 17, h + 20);
}

env_reply_t env_call(const char *subject, const char *user, const char *roles, const char *idem_key, json_t *input)
{
    env_reply_t r = {0};
    char *body = json_dumps(input, JSON_COMPACT);
    json_decref(input);
    mp_bus_hdr_t extra[] = {{"Idempotency-Key", idem_key}};
    mp_bus_call_t call = {.subject = subject,
                          .body = body,
                          .len = strlen(body),
                          .timeout_ms = 15000,
                          .extra = extra,
                          .nextra = idem_key ? 1 : 0,
                          .ctx = {.auth_sub = user, .auth_roles = roles}};
    mp_msg_t *reply = NULL;
    assert_int_equal(mp_bus_request(&reply, env_bus, &call), MP_OK);
    free(body);
    r.status = mp_msg_status(reply);
    if (mp_msg_len(reply))
        mp_json_parse(&r.body, mp_msg_data(reply), mp_msg_len(reply));
    const char *h = mp_msg_header(reply, "Idempotent-Replayed");
    r.replayed = h && strcmp(h, "true") == 0;
    h = mp_msg_header(reply, "Location");
    snprintf(r.location, sizeof(r.location), "%s", h ? h : "");
    mp_msg_destroy(reply);
    return r;
}

void env_reply_dispose(env_reply_t *r)
{
    json_decref(r->body);
    r->body = NULL;
}

env_reply_t env_order(const char *user, const char *key, int q1, int q2, const char *token)
{
    json_t *items = json_array();
    if (q1)
        json_array_append_new(items, json_pack("{s:s, s:i}", "product_id", env_p1, "quantity", q1));
    if (q2)
        json_array_append_new(items, json_pack("{s:s, s:i}", "product_id", env_p2, "quantity", q2));
    return env_call("order.v1.create", user, "user", key,
                    json_pack("{s:o, s:s}", "items", items, "payment_token", token));
}

long env_long(const char *sql, int n, const char *const *params)
{
    mp_db_res_t *res = NULL;
    assert_int_equal(mp_db_exec_once(&res, env_db, sql, n, params), MP_OK);
    assert_int_equal(mp_db_rows(res), 1);
    long v = atol(mp_db_get(res, 0, 0) ? mp_db_get(res, 0, 0) : "0");
    mp_db_res_free(res);
    return v;
}

void env_text(char *out, size_t size, const char *sql, int n, const char *const *params)
{
    mp_db_res_t *res = NULL;
    assert_int_equal(mp_db_exec_once(&res, env_db, sql, n, params), MP_OK);
    snprintf(out, size, "%s", mp_db_rows(res) && mp_db_get(res, 0, 0) ? mp_db_get(res, 0, 0) : "");
    mp_db_res_free(res);
}

bool env_wait_status(const char *user, const char *order_id, const char *status)
{
    for (int i = 0; i < 400; i++) {
        env_reply_t r = env_call("order.v1.get", user, "user", NULL, json_pack("{s:s}", "id", order_id));
        bool done = r.status == 200 && strcmp(mp_json_str(r.body, "status"), status) == 0;
        env_reply_dispose(&r);
        if (done)
            return true;
        usleep(50 * 1000);
    }
    return false;
}

int env_notes(const char *user, const char *template_name, json_t **last)
{
    DIR *d = opendir(notes);
    int n = 0;
    if (last)
        *last = NULL;
    if (d == NULL)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char path[512];
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", notes, e->d_name);
        json_t *v = json_load_file(path, 0, NULL);
        const char *u = mp_json_str(v, "user_id"), *t = mp_json_str(v, "template");
        if (u && strcmp(u, user) == 0 && (template_name == NULL || (t && strcmp(t, template_name) == 0))) {
            n++;
            if (last &&
                (*last == NULL || strcmp(mp_json_str(v, "created_at"), mp_json_str(*last, "created_at")) >= 0)) {
                json_decref(*last);
                *last = json_incref(v);
            }
        }
        json_decref(v);
    }
    closedir(d);
    return n;
}
