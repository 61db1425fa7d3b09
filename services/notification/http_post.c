/*
 * http_post.c: one HTTP/1.1 POST over a plain socket (see http_post.h).
 *
 * Every step (resolve, connect, send, receive the status line) counts
 * against one deadline: connect is non-blocking with poll(), and the socket
 * then gets send/receive timeouts of whatever time is left. Only the status
 * line is read; the connection is closed after it ("Connection: close").
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "mp/buf.h"
#include "http_post.h"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

mp_status_t http_url_parse(http_url_t *u, const char *url)
{
    memset(u, 0, sizeof(*u));
    if (url == NULL || strncmp(url, "http://", 7) != 0)
        return mp_err_set(MP_EINVAL, "only http:// URLs are supported (https is planned)");
    const char *h = url + 7, *end = h + strcspn(h, "/?#"), *colon;
    if (*h == '[') { /* [v6]:port */
        const char *close = memchr(h, ']', (size_t)(end - h));
        if (close == NULL)
            return mp_err_set(MP_EINVAL, "unclosed [ in the host");
        snprintf(u->host, sizeof(u->host), "%.*s", (int)(close - h - 1), h + 1);
        colon = close + 1 < end && close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        snprintf(u->host, sizeof(u->host), "%.*s", (int)((colon ? colon : end) - h), h);
    }
    if (colon) {
        size_t n = (size_t)(end - colon - 1);
        if (n == 0 || n > 5 || strspn(colon + 1, "0123456789") < n)
            return mp_err_set(MP_EINVAL, "the port must be a number");
        snprintf(u->port, sizeof(u->port), "%.*s", (int)n, colon + 1);
    } else {
        snprintf(u->port, sizeof(u->port), "80");
    }
    if (u->host[0] == '\0')
        return mp_err_set(MP_EINVAL, "the URL has no host");
    if (*end == '#' || strchr(end, '#'))
        return mp_err_set(MP_EINVAL, "the URL may not have a fragment");
    snprintf(u->path, sizeof(u->path), "%s%s", *end == '/' ? "" : "/", end);
    if (strcspn(u->path, " \r\n") != strlen(u->path))
        return mp_err_set(MP_EINVAL, "the path may not contain spaces or line breaks");
    return MP_OK;
}

static int remaining(int64_t deadline)
{
    int64_t left = deadline - mono_ms();
    return left > 0 ? (int)left : 0;
}

/* Connects to the first address that answers before the deadline. Returns the socket or -1. */
static int connect_to(const http_url_t *u, int64_t deadline, mp_status_t *st)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc != 0) {
        *st = mp_err_set(MP_EUNAVAIL, "cannot resolve %s: %s", u->host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    *st = mp_err_set(MP_EUNAVAIL, "cannot connect to %s:%s", u->host, u->port);
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        int s = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (s < 0)
            continue;
        if (connect(s, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
            close(s);
            continue;
        }
        struct pollfd p = {.fd = s, .events = POLLOUT};
        int err = 0;
        socklen_t elen = sizeof(err);
        if (poll(&p, 1, remaining(deadline)) == 1 && getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 &&
            err == 0) {
            fd = s;
        } else {
            if (remaining(deadline) == 0)
                *st = mp_err_set(MP_ETIMEDOUT, "connecting to %s:%s timed out", u->host, u->port);
            else if (err)
                *st = mp_err_set(MP_EUNAVAIL, "cannot connect to %s:%s: %s", u->host, u->port, strerror(err));
            close(s);
        }
    }
    freeaddrinfo(res);
    if (fd >= 0)
        *st = MP_OK;
    return fd;
}

static void set_timeouts(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    if (ms <= 0)
        tv.tv_usec = 1000; /* 0 would mean "no timeout" */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static mp_status_t send_all(int fd, const char *p, size_t len, int64_t deadline)
{
    while (len > 0) {
        set_timeouts(fd, remaining(deadline));
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return mp_err_set(MP_ETIMEDOUT, "sending the request timed out");
        if (n <= 0)
            return mp_err_set(MP_EIO, "sending the request failed: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    return MP_OK;
}

/* Reads until the status line is complete and parses its code. */
static mp_status_t read_status(int *status, int fd, int64_t deadline)
{
    char buf[512];
    size_t have = 0;
    while (have < sizeof(buf) - 1 && memchr(buf, '\n', have) == NULL) {
        set_timeouts(fd, remaining(deadline));
        ssize_t n = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return mp_err_set(MP_ETIMEDOUT, "no response before the deadline");
        if (n <= 0)
            return mp_err_set(MP_EIO, "the connection closed before a response");
        have += (size_t)n;
    }
    buf[have] = '\0';
    int code = 0;
    if (sscanf(buf, "HTTP/1.%*1d %3d", &code) != 1 || code < 100 || code > 599)
        return mp_err_set(MP_EBADREPLY, "the response is not HTTP");
    *status = code;
    return MP_OK;
}

mp_status_t http_post(int *status, const http_url_t *u, const char *const *headers, const char *body, size_t len,
                      int timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    mp_status_t st;
    int fd = connect_to(u, deadline, &st);
    if (fd < 0)
        return st;
    mp_buf_t req = MP_BUF_INIT;
    int v6 = strchr(u->host, ':') != NULL;
    mp_buf_printf(&req,
                  "POST %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nContent-Type: application/json\r\n"
                  "Content-Length: %zu\r\nConnection: close\r\nUser-Agent: moonport-notification\r\n",
                  u->path, v6 ? "[" : "", u->host, v6 ? "]" : "", strcmp(u->port, "80") ? ":" : "",
                  strcmp(u->port, "80") ? u->port : "", len);
    for (size_t i = 0; headers && headers[i]; i++)
        mp_buf_printf(&req, "%s\r\n", headers[i]);
    mp_buf_puts(&req, "\r\n");
    mp_buf_append(&req, body, len);
    st = send_all(fd, req.base, req.len, deadline);
    if (st == MP_OK)
        st = read_status(status, fd, deadline);
    mp_buf_dispose(&req);
    close(fd);
    return st;
}
