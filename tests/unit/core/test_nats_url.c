/*
 * test_nats_url.c: unit tests for core/nats_url.c, the server list
 * `nats.url` takes: one URL or a cluster's nodes separated by commas.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "mp/nats_url.h"

static void test_nats_url_one_server_with_defaults(void **state)
{
    mp_nats_url_t u;
    assert_int_equal(mp_nats_url_parse(&u, "nats://127.0.0.1"), MP_OK);
    assert_int_equal(u.count, 1);
    assert_string_equal(u.servers[0].url, "nats://127.0.0.1");
    assert_string_equal(u.servers[0].host, "127.0.0.1");
    assert_int_equal(u.servers[0].port, 4222);
    assert_null(u.servers[0].user);
    assert_null(u.servers[0].password);
    mp_nats_url_dispose(&u);
    assert_int_equal(mp_nats_url_parse(&u, "nats-1.nats:4223"), MP_OK); /* no scheme: as nats.c takes it */
    assert_string_equal(u.servers[0].host, "nats-1.nats");
    assert_int_equal(u.servers[0].port, 4223);
    mp_nats_url_dispose(&u);
}

static void test_nats_url_cluster_list_keeps_order_and_entries(void **state)
{
    mp_nats_url_t u;
    assert_int_equal(mp_nats_url_parse(&u, " nats://a:4222, nats://b:4223 ,,tls://c:4224,"), MP_OK);
    assert_int_equal(u.count, 3); /* spaces trimmed, empty entries skipped */
    const char *urls[] = {"nats://a:4222", "nats://b:4223", "tls://c:4224"};
    const char *hosts[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        assert_string_equal(u.servers[i].url, urls[i]);
        assert_string_equal(u.servers[i].host, hosts[i]);
        assert_int_equal(u.servers[i].port, 4222 + i);
    }
    mp_nats_url_dispose(&u);
}

static void test_nats_url_credentials_per_entry(void **state)
{
    mp_nats_url_t u;
    assert_int_equal(mp_nats_url_parse(&u, "nats://test:p@ss:w0rd@127.0.0.1:4222,nats://only-user@h2"), MP_OK);
    assert_string_equal(u.servers[0].user, "test");
    assert_string_equal(u.servers[0].password, "p@ss:w0rd"); /* the last '@' ends the credentials */
    assert_string_equal(u.servers[0].host, "127.0.0.1");
    assert_string_equal(u.servers[1].user, "only-user");
    assert_null(u.servers[1].password);
    assert_string_equal(u.servers[1].host, "h2");
    mp_nats_url_dispose(&u);
}

static void test_nats_url_refuses_what_is_no_server(void **state)
{
    const char *bad[] = {"",
                         " , ",
                         "nats://",
                         "nats://:4222",
                         "nats://h:0",
                         "nats://h:65536",
                         "nats://h:42x",
                         "nats://h:",
                         "nats://h/path",
                         "nats://a:4222,nats://:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mp_nats_url_t u;
        assert_int_equal(mp_nats_url_parse(&u, bad[i]), MP_EINVAL);
        mp_nats_url_dispose(&u); /* also after a failure: frees what was parsed */
    }
    mp_nats_url_t u;
    assert_int_equal(mp_nats_url_parse(&u, NULL), MP_EINVAL);
    mp_nats_url_dispose(&u);
}

static void test_nats_url_messages_never_quote_the_list(void **state)
{
    mp_nats_url_t u;
    assert_int_equal(mp_nats_url_parse(&u, "nats://u:secret-pw@h:1,nats://u:secret-pw@:2"), MP_EINVAL);
    assert_null(strstr(mp_err_get(), "secret-pw"));
    assert_non_null(strstr(mp_err_get(), "server 2"));
    mp_nats_url_dispose(&u);
}

static void test_nats_url_at_most_sixteen(void **state)
{
    char list[1024] = "";
    for (int i = 0; i <= MP_NATS_URL_MAX; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%snats://n%d:4222", i ? "," : "", i);
    mp_nats_url_t u;
    assert_int_equal(mp_nats_url_parse(&u, list), MP_EINVAL);
    mp_nats_url_dispose(&u);
    *strrchr(list, ',') = '\0';
    assert_int_equal(mp_nats_url_parse(&u, list), MP_OK);
    assert_int_equal(u.count, MP_NATS_URL_MAX);
    mp_nats_url_dispose(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nats_url_one_server_with_defaults),
        cmocka_unit_test(test_nats_url_cluster_list_keeps_order_and_entries),
        cmocka_unit_test(test_nats_url_credentials_per_entry),
        cmocka_unit_test(test_nats_url_refuses_what_is_no_server),
        cmocka_unit_test(test_nats_url_messages_never_quote_the_list),
        cmocka_unit_test(test_nats_url_at_most_sixteen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
