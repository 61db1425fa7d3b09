/*
 * http.c: h2o server bootstrap on libuv with one listener per loop thread
 * (see mp/http.h).
 *
 * libuv 1.44 (Debian 12) cannot set SO_REUSEPORT itself, so each thread
 * makes its own socket with the option, binds it, and hands the fd to
 * uv_tcp_open(). It listens only once the owner's thread_ready() says its
 * thread can serve: a socket joins the port's SO_REUSEPORT group at
 * listen(), so until then the kernel gives connections to the others.
 *
 * Draining a loop (stop): closing a listener resets every connection still
 * in its accept queue, and a connection accepted a moment ago may not have
 * sent its request yet. So the loop first accepts whatever is queued, then
 * closes the listener (the kernel takes it out of the port's group, and
 * new connections go to the other processes), and stops only when no
 * request is in flight and no connection is younger than FRESH_MS. Stopping is cross-thread: the controlling thread
 * wakes each loop with a uv_async; the loop closes its listener and polls its in-flight count until it reaches zero or
 * the drain time runs out.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include "mp/alloc.h"
#include "mp/http.h"
#include "h2o/http2.h"
#include "mp/log.h"

/* A connection accepted this long ago that has not started a request is idle (keep-alive), not on its way. */
#define FRESH_MS 300

typedef struct loop_slot {
    mp_http_thread_t t;
    pthread_t tid;
    int fd;
    uv_tcp_t listener;
    uv_async_t wake;
    uv_timer_t drain_timer;
    uint64_t drain_until;
    uint64_t last_accept; /* uv_now() of the newest connection */
    size_t conns;         /* connections open */
    h2o_accept_ctx_t accept_ctx;
    int started;
} loop_slot_t;

typedef struct conn {
    uv_tcp_t tcp; /* first: libuv's close callback gets this */
    loop_slot_t *slot;
} conn_t;

struct mp_http_server {
    mp_http_opts_t opts;
    char *name;
    h2o_globalconf_t conf;
    h2o_hostconf_t *host;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int port;
    SSL_CTX *_Atomic ssl_ctx;
    loop_slot_t *slots;
    int nslots;
    _Atomic int stopping;
    int drain_ms;
    pthread_barrier_t ready;
};

/* ---- request tracking ---------------------------------------------------- */

static void on_req_disposed(void *p)
{
    mp_http_thread_t *t = *(mp_http_thread_t **)p;
    t->inflight--;
}

void mp_http_track(h2o_req_t *req)
{
    mp_http_thread_t *t = mp_http_thread_of(req);
    mp_http_thread_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), on_req_disposed);
    *slot = t;
    t->inflight++;
}

h2o_handler_t *mp_http_register(h2o_hostconf_t *host, const char *path, size_t size,
                                int (*on_req)(h2o_handler_t *self, h2o_req_t *req))
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, path, 0);
    h2o_handler_t *h = h2o_create_handler(pathconf, size < sizeof(*h) ? sizeof(*h) : size);
    h->on_req = on_req;
    return h;
}

/* ---- address and sockets ------------------------------------------------- */

static mp_status_t parse_listen(mp_http_server_t *srv, const char *listen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || (size_t)(colon - listen) >= sizeof(host))
        return mp_err_set(MP_EINVAL, "listen address \"%s\" is not host:port", listen);
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char *h = host;
    if (h[0] == '[' && h[strlen(h) - 1] == ']') { /* [::1]:8080 */
        h[strlen(h) - 1] = '\0';
        h++;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    int rc = getaddrinfo(*h ? h : NULL, colon + 1, &hints, &res);
    if (rc != 0)
        return mp_err_set(MP_EINVAL, "listen address \"%s\": %s", listen, gai_strerror(rc));
    memcpy(&srv->addr, res->ai_addr, res->ai_addrlen);
    srv->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return MP_OK;
}

static int open_listener(mp_http_server_t *srv)
{
    int fd = socket(srv->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
        bind(fd, (struct sockaddr *)&srv->addr, srv->addrlen) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* ---- TLS ------------------------------------------------------------------ */

static mp_status_t make_ssl_ctx(SSL_CTX **out, const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return mp_err_set(MP_ENOMEM, "cannot create TLS context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        SSL_CTX_free(ctx);
        return mp_err_set(MP_EINVAL, "TLS certificate %s: %s", cert, ERR_reason_error_string(ERR_get_error()));
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        SSL_CTX_free(ctx);
        return mp_err_set(MP_EINVAL, "TLS key %s: %s", key, ERR_reason_error_string(ERR_get_error()));
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    *out = ctx;
    return MP_OK;
}

mp_status_t mp_http_server_reload_tls(mp_http_server_t *srv)
{
    SSL_CTX *ctx;
    if (srv->opts.tls_cert == NULL)
        return MP_OK;
    mp_status_t st = make_ssl_ctx(&ctx, srv->opts.tls_cert, srv->opts.tls_key);
    if (st != MP_OK)
        return st;
    /* new connections pick the new context up at accept; the old one lives as long as its connections (refcount) */
    SSL_CTX *old = atomic_exchange(&srv->ssl_ctx, ctx);
    SSL_CTX_free(old);
    return MP_OK;
}

/* ---- loop threads --------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = (conn_t *)h;
    c->slot->conns--;
    free(c);
}

/* Hands an accepted connection to h2o. */
static void serve_conn(loop_slot_t *s, conn_t *c)
{
    uv_tcp_t *conn = &c->tcp;
    s->conns++;
    s->last_accept = uv_now(&s->t.loop);
    uv_tcp_nodelay(conn, 1);
    SSL_CTX *ssl = atomic_load(&s->t.server->ssl_ctx);
    if (ssl != NULL && s->accept_ctx.ssl_ctx != ssl) {
        SSL_CTX_up_ref(ssl); /* each loop keeps its own reference to the context it uses */
        SSL_CTX_free(s->accept_ctx.ssl_ctx);
        s->accept_ctx.ssl_ctx = ssl;
    }
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, on_conn_closed);
    h2o_accept(&s->accept_ctx, sock);
}

static void on_accept(uv_stream_t *listener, int status)
{
    loop_slot_t *s = listener->data;
    if (status != 0)
        return;
    conn_t *c = h2o_mem_alloc(sizeof(*c));
    c->slot = s;
    uv_tcp_init(listener->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    serve_conn(s, c);
}

/* Accepts everything in the listener's queue, which closing it would reset. */
static void accept_queued(loop_slot_t *s)
{
    uv_os_fd_t lfd;
    if (uv_fileno((uv_handle_t *)&s->listener, &lfd) != 0)
        return;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN: empty */
        }
        conn_t *c = h2o_mem_alloc(sizeof(*c));
        c->slot = s;
        uv_tcp_init(&s->t.loop, &c->tcp);
        if (uv_tcp_open(&c->tcp, fd) != 0) {
            close(fd);
            uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
            continue;
        }
        serve_conn(s, c);
    }
}

static void on_drain_tick(uv_timer_t *timer)
{
    loop_slot_t *s = timer->data;
    uint64_t now = uv_now(&s->t.loop);
    /* a connection accepted just now has its request on the way: it is in flight too */
    bool fresh = s->conns > 0 && now < s->last_accept + FRESH_MS;
    if ((s->t.inflight == 0 && !fresh) || now >= s->drain_until)
        uv_stop(&s->t.loop);
}

static void on_wake(uv_async_t *async)
{
    loop_slot_t *s = async->data;
    mp_http_server_t *srv = s->t.server;
    if (!atomic_load(&srv->stopping))
        return;
    accept_queued(s);
    uv_close((uv_handle_t *)&s->listener, NULL);
    h2o_context_request_shutdown(&s->t.ctx); /* HTTP/1.1 answers with Connection: close, HTTP/2 sends GOAWAY */
    s->drain_until = uv_now(&s->t.loop) + (uint64_t)srv->drain_ms;
    uv_timer_start(&s->drain_timer, on_drain_tick, 0, 10);
}

static void on_ready_tick(uv_timer_t *t)
{
    (void)t; /* only wakes the loop, so the wait below looks again */
}

/* Runs the loop, the owner's connections making progress on it, until the owner says the thread can serve or the
 * wait runs out (then it serves anyway, as it would have without the wait). */
static void wait_until_ready(loop_slot_t *s)
{
    mp_http_server_t *srv = s->t.server;
    if (srv->opts.thread_ready == NULL)
        return;
    uint64_t until = uv_now(&s->t.loop) + (uint64_t)(srv->opts.ready_wait_ms > 0 ? srv->opts.ready_wait_ms : 5000);
    uv_timer_t tick;
    uv_timer_init(&s->t.loop, &tick);
    uv_timer_start(&tick, on_ready_tick, 5, 5);
    while (!srv->opts.thread_ready(srv->opts.arg, &s->t) && uv_now(&s->t.loop) < until)
        uv_run(&s->t.loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&s->t.loop, UV_RUN_NOWAIT); /* the close completes before `tick` goes out of scope */
}

static void *loop_main(void *p)
{
    loop_slot_t *s = p;
    mp_http_server_t *srv = s->t.server;

    mp_log_set_thread_service(srv->name);
    uv_loop_init(&s->t.loop);
    h2o_context_init(&s->t.ctx, &s->t.loop, &srv->conf);
    s->accept_ctx.ctx = &s->t.ctx;
    s->accept_ctx.hosts = srv->conf.hosts;
    s->accept_ctx.ssl_ctx = atomic_load(&srv->ssl_ctx);
    if (s->accept_ctx.ssl_ctx)
        SSL_CTX_up_ref(s->accept_ctx.ssl_ctx);
    uv_tcp_init(&s->t.loop, &s->listener);
    s->listener.data = s;
    uv_tcp_open(&s->listener, s->fd);
    uv_async_init(&s->t.loop, &s->wake, on_wake);
    s->wake.data = s;
    uv_timer_init(&s->t.loop, &s->drain_timer);
    s->drain_timer.data = s;
    if (srv->opts.on_thread_start)
        srv->opts.on_thread_start(srv->opts.arg, &s->t);
    wait_until_ready(s);
    int rc = uv_listen((uv_stream_t *)&s->listener, SOMAXCONN, on_accept);
    if (rc != 0)
        mp_log_kv(MP_LOG_ERROR, NULL, "cannot listen", "server", srv->name, "error", uv_strerror(rc), NULL);
    pthread_barrier_wait(&srv->ready);

    uv_run(&s->t.loop, UV_RUN_DEFAULT);

    if (srv->opts.on_thread_stop)
        srv->opts.on_thread_stop(srv->opts.arg, &s->t);
    uv_close((uv_handle_t *)&s->wake, NULL);
    uv_close((uv_handle_t *)&s->drain_timer, NULL);
    uv_run(&s->t.loop, UV_RUN_NOWAIT);
    SSL_CTX_free(s->accept_ctx.ssl_ctx);
    /* idle keep-alive connections die with the process; the context is left for the OS to reclaim */
    return NULL;
}

mp_status_t mp_http_server_start(mp_http_server_t **out, const mp_http_opts_t *opts)
{
    mp_http_server_t *srv = mp_xcalloc(1, sizeof(*srv));
    mp_status_t st;

    srv->opts = *opts;
    srv->name = mp_xstrdup(opts->name ? opts->name : "http");
    srv->nslots = opts->threads > 0 ? opts->threads : 1;
    if ((st = parse_listen(srv, opts->listen ? opts->listen : "0.0.0.0:8080")) != MP_OK)
        goto fail;
    if (opts->tls_cert || opts->tls_key) {
        SSL_CTX *ctx = NULL;
        if (!opts->tls_cert || !opts->tls_key) {
            st = mp_err_set(MP_EINVAL, "TLS needs both a certificate and a key file");
            goto fail;
        }
        if ((st = make_ssl_ctx(&ctx, opts->tls_cert, opts->tls_key)) != MP_OK)
            goto fail;
        atomic_store(&srv->ssl_ctx, ctx);
    }
    h2o_config_init(&srv->conf);
    srv->conf.server_name = h2o_iovec_init(H2O_STRLIT("moonport")); /* no version in the Server header */
    srv->conf.max_request_entity_size = opts->max_body ? opts->max_body : 1024 * 1024;
    uint64_t idle = opts->idle_timeout_ms > 0 ? (uint64_t)opts->idle_timeout_ms : 30000;
    srv->conf.http1.req_timeout = idle;
    srv->conf.http2.idle_timeout = idle;
    srv->host = h2o_config_register_host(&srv->conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    mp_http_problem_errors(srv->host);
    if (opts->configure)
        opts->configure(opts->arg, &srv->conf, srv->host);

    srv->slots = mp_xcalloc((size_t)srv->nslots, sizeof(*srv->slots));
    for (int i = 0; i < srv->nslots; i++)
        srv->slots[i].fd = -1;
    /* the first socket decides the port (port 0 picks one); the others join it */
    for (int i = 0; i < srv->nslots; i++) {
        int fd = open_listener(srv);
        if (fd < 0) {
            st = mp_err_set(MP_EIO, "cannot listen on %s: %s", opts->listen, strerror(errno));
            goto fail;
        }
        srv->slots[i].fd = fd;
        if (i == 0) {
            struct sockaddr_storage bound;
            socklen_t len = sizeof(bound);
            getsockname(fd, (struct sockaddr *)&bound, &len);
            srv->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                          : ((struct sockaddr_in *)&bound)->sin_port);
            if (srv->addr.ss_family == AF_INET6)
                ((struct sockaddr_in6 *)&srv->addr)->sin6_port = htons((uint16_t)srv->port);
            else
                ((struct sockaddr_in *)&srv->addr)->sin_port = htons((uint16_t)srv->port);
        }
    }
    pthread_barrier_init(&srv->ready, NULL, (unsigned)srv->nslots + 1);
    for (int i = 0; i < srv->nslots; i++) {
        loop_slot_t *s = &srv->slots[i];
        s->t.index = i;
        s->t.server = srv;
        if (pthread_create(&s->tid, NULL, loop_main, s) != 0)
            abort(); /* cannot start a thread at boot: nothing sensible to continue with */
        s->started = 1;
    }
    pthread_barrier_wait(&srv->ready);
    *out = srv;
    return MP_OK;

fail:
    for (int i = 0; srv->slots && i < srv->nslots; i++)
        if (srv->slots[i].fd >= 0)
            close(srv->slots[i].fd);
    SSL_CTX_free(atomic_load(&srv->ssl_ctx));
    free(srv->slots);
    free(srv->name);
    free(srv);
    return st;
}

void mp_http_server_stop(mp_http_server_t *srv, int drain_ms)
{
    if (srv == NULL)
        return;
    srv->drain_ms = drain_ms;
    atomic_store(&srv->stopping, 1);
    for (int i = 0; i < srv->nslots; i++)
        if (srv->slots[i].started)
            uv_async_send(&srv->slots[i].wake);
    for (int i = 0; i < srv->nslots; i++)
        if (srv->slots[i].started)
            pthread_join(srv->slots[i].tid, NULL);
    pthread_barrier_destroy(&srv->ready);
    SSL_CTX_free(atomic_load(&srv->ssl_ctx));
    /* h2o's configuration and contexts are process-lifetime: connections may still reference them */
    free(srv->name);
}

int mp_http_server_port(const mp_http_server_t *srv)
{
    return srv->port;
}
