/*
 * Unit tests for services/notification/http_post.c: parsing webhook URLs
 * (what is accepted, what is refused and why) and one POST to a local
 * listener, checking the exact request the webhook receiver gets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <cmocka.h>
#include "services/notification/http_post.c"

static void test_http_url_parse_accepts_http_urls(void **state)
{
    http_url_t u;
    assert_int_equal(http_url_parse(&u, "http://hooks.example.com/in?x=1"), MP_OK);
    assert_string_equal(u.host, "hooks.example.com");
    assert_string_equal(u.port, "80");
    assert_string_equal(u.path, "/in?x=1");
    assert_int_equal(http_url_parse(&u, "http://127.0.0.1:8081"), MP_OK);
    assert_string_equal(u.port, "8081");
    assert_string_equal(u.path, "/");
    assert_int_equal(http_url_parse(&u, "http://[::1]:9000/h"), MP_OK);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.port, "9000");
    assert_int_equal(http_url_parse(&u, "http://h?only=query"), MP_OK);
    assert_string_equal(u.path, "/?only=query");
}

static void test_http_url_parse_refuses_the_rest(void **state)
{
    http_url_t u;
    const char *bad[] = {"https://hooks.example.com/",
                         "ftp://h/",
                         "hooks.example.com",
                         "http://",
                         "http://:80/",
                         "http://h:/",
                         "http://h:99999999/",
                         "http://h:8x/",
                         "http://[::1/",
                         "http://h/a b",
                         "http://h/#frag",
                         NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(http_url_parse(&u, bad[i]), MP_EINVAL);
    assert_non_null(strstr((http_url_parse(&u, "https://h/"), mp_err_get()), "https is planned"));
}

typedef struct server {
    int fd, port;
    char got[2048];
    const char *answer;
} server_t;

static void *serve_once(void *arg)
{
    server_t *s = arg;
    int c = accept(s->fd, NULL, NULL);
    size_t n = 0;
    ssize_t r;
    /* the request is small: read until the body (after the blank line) is complete */
    while ((r = recv(c, s->got + n, sizeof(s->got) - 1 - n, 0)) > 0) {
        n += (size_t)r;
        s->got[n] = '\0';
        char *body = strstr(s->got, "\r\n\r\n");
        if (body && strlen(body + 4) >= 11)
            break;
    }
    send(c, s->answer, strlen(s->answer), 0);
    close(c);
    return NULL;
}

static void test_http_post_sends_the_body_and_headers_and_reads_the_status(void **state)
{
    server_t s = {.answer = "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    s.fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(s.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s.fd, 1), 0);
    assert_int_equal(getsockname(s.fd, (struct sockaddr *)&a, &len), 0);
    s.port = ntohs(a.sin_port);
    pthread_t t;
    pthread_create(&t, NULL, serve_once, &s);

    char url[64];
    http_url_t u;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook?v=1", s.port);
    assert_int_equal(http_url_parse(&u, url), MP_OK);
    const char *headers[] = {"X-Moonport-Signature: sha256=abc", NULL};
    int status = 0;
    assert_int_equal(http_post(&status, &u, headers, "{\"a\":\"b c\"}", 11, 5000), MP_OK);
    pthread_join(t, NULL);
    close(s.fd);
    assert_int_equal(status, 202);
    assert_true(strncmp(s.got, "POST /hook?v=1 HTTP/1.1\r\n", 25) == 0);
    char host[64];
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", s.port);
    assert_non_null(strstr(s.got, host));
    assert_non_null(strstr(s.got, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(s.got, "\r\nContent-Length: 11\r\n"));
    assert_non_null(strstr(s.got, "\r\nX-Moonport-Signature: sha256=abc\r\n"));
    assert_non_null(strstr(s.got, "\r\n\r\n{\"a\":\"b c\"}"));
}

static void test_http_post_to_a_closed_port_is_unavailable(void **state)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd); /* nobody listens there now */
    char url[64];
    http_url_t u;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", ntohs(a.sin_port));
    assert_int_equal(http_url_parse(&u, url), MP_OK);
    int status = 0;
    assert_int_equal(http_post(&status, &u, NULL, "{}", 2, 2000), MP_EUNAVAIL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_url_parse_accepts_http_urls),
        cmocka_unit_test(test_http_url_parse_refuses_the_rest),
        cmocka_unit_test(test_http_post_sends_the_body_and_headers_and_reads_the_status),
        cmocka_unit_test(test_http_post_to_a_closed_port_is_unavailable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
