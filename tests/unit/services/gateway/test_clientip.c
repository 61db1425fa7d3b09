/*
 * test_clientip.c: unit tests for services/gateway/clientip.c: CIDR parsing
 * and matching, and who the client is behind trusted proxies, including
 * the spoofing attempts X-Forwarded-For invites.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "services/gateway/clientip.c"

static void test_clientip_parses_cidrs(void **state)
{
    gw_cidr_t c;
    uint8_t a[16];
    assert_true(gw_cidr_parse(&c, "10.0.0.0/8"));
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(c.bits, 8);
    inet_pton(AF_INET, "10.200.3.4", a);
    assert_true(gw_cidr_contains(&c, AF_INET, a));
    inet_pton(AF_INET, "11.0.0.1", a);
    assert_false(gw_cidr_contains(&c, AF_INET, a));
    assert_true(gw_cidr_parse(&c, "192.168.1.7"));
    assert_int_equal(c.bits, 32);
    assert_true(gw_cidr_parse(&c, "172.16.0.0/12"));
    inet_pton(AF_INET, "172.31.255.255", a);
    assert_true(gw_cidr_contains(&c, AF_INET, a));
    inet_pton(AF_INET, "172.32.0.0", a);
    assert_false(gw_cidr_contains(&c, AF_INET, a));
    assert_true(gw_cidr_parse(&c, "fd00::/8"));
    inet_pton(AF_INET6, "fd12::1", a);
    assert_true(gw_cidr_contains(&c, AF_INET6, a));
    assert_true(gw_cidr_parse(&c, "::ffff:10.0.0.1/32")); /* mapped: an IPv4 block */
    assert_int_equal(c.family, AF_INET);
    assert_true(gw_cidr_parse(&c, "0.0.0.0/0"));
    inet_pton(AF_INET, "8.8.8.8", a);
    assert_true(gw_cidr_contains(&c, AF_INET, a));
    assert_false(gw_cidr_parse(&c, "10.0.0.0/33"));
    assert_false(gw_cidr_parse(&c, "10.0.0/8"));
    assert_false(gw_cidr_parse(&c, "example.com"));
    assert_false(gw_cidr_parse(&c, "10.0.0.0/"));
    assert_false(gw_cidr_parse(&c, ""));
}

static struct sockaddr_storage peer(const char *ip)
{
    struct sockaddr_storage ss = {0};
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, ip, &s6->sin6_addr);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        inet_pton(AF_INET, ip, &s4->sin_addr);
    }
    return ss;
}

static void assert_client(const char *from, const char *xff, const char *want)
{
    gw_cidr_t trusted[2];
    assert_true(gw_cidr_parse(&trusted[0], "10.0.0.0/8"));
    assert_true(gw_cidr_parse(&trusted[1], "fd00::/8"));
    struct sockaddr_storage ss = peer(from);
    char out[64];
    gw_client_ip(out, sizeof(out), (struct sockaddr *)&ss, xff, xff ? strlen(xff) : 0, trusted, 2);
    if (strcmp(out, want) != 0)
        fail_msg("peer %s, X-Forwarded-For %s: got %s, want %s", from, xff ? xff : "(none)", out, want);
}

static void test_clientip_behind_trusted_proxies(void **state)
{
    assert_client("203.0.113.9", NULL, "203.0.113.9");
    /* an untrusted peer's header is ignored: anyone can write one */
    assert_client("203.0.113.9", "1.2.3.4", "203.0.113.9");
    assert_client("10.0.0.5", "198.51.100.7", "198.51.100.7");
    /* the client prepended a lie; the walk stops at the first untrusted hop from the right */
    assert_client("10.0.0.5", "6.6.6.6, 198.51.100.7, 10.1.1.1", "198.51.100.7");
    assert_client("10.0.0.5", " 198.51.100.7 ,10.9.9.9 ", "198.51.100.7");
    /* every hop trusted: the leftmost is the best we know */
    assert_client("10.0.0.5", "10.3.3.3, 10.2.2.2", "10.3.3.3");
    /* garbage stops the walk at the last trusted hop */
    assert_client("10.0.0.5", "198.51.100.7, not-an-ip", "10.0.0.5");
    assert_client("10.0.0.5", "", "10.0.0.5");
    assert_client("fd00::1", "2001:db8::7", "2001:db8::7");
    assert_client("::ffff:10.0.0.5", "198.51.100.8", "198.51.100.8");
    assert_client("::ffff:203.0.113.9", NULL, "203.0.113.9");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clientip_parses_cidrs),
        cmocka_unit_test(test_clientip_behind_trusted_proxies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
