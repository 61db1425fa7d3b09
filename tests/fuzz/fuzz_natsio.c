/*
 * fuzz_natsio.c: libFuzzer target for the loop-native NATS client's
 * protocol parser (core/natsio.c: parse_one) and mp_reply_header()
 * (core/bus.c).
 *
 * natsio.c is included to reach its static parser. One hand-built client
 * (no socket; a real uv loop and flusher handle, so PING's PONG and the
 * CONNECT queue as they do in production) reads each input as a server's
 * byte stream, the way on_read does: from S_INFO (so INFO sends CONNECT and
 * PONG makes it ready, as after a TCP connect), consuming `used` bytes until
 * 0 (more data needed) or -1 (protocol error). It must never crash or read
 * outside the input; every message handed to on_msg lies inside the input
 * (subject, headers, then data right after them), and an HMSG's header
 * length never exceeds its total. mp_reply_header() then reads the input,
 * and every HMSG's header block, as a header block: a value it finds lies
 * inside the block, without a leading space or a trailing CR or space. A
 * permissions violation (-ERR that refuses one message) names its subject.
 * Messages for the two request subscriptions (sids 2 and 3, as a serving
 * worker has them) reach on_request with a subscription index in range and
 * a reply subject inside the input (or empty).
 * Seeds: tests/fuzz/corpus/natsio/.
 */
#include "../../core/natsio.c" /* first: it defines _GNU_SOURCE (memmem) */
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct input {
    const char *base;
    size_t size;
    unsigned sink; /* every byte handed over is read into this, so ASan checks them all */
} input_t;

static volatile unsigned sink_out;

static const char *const header_names[] = {"Status", "Nats-Msg-Id", "Content-Type", "Description", "X", ""};

static void die(const char *what)
{
    fprintf(stderr, "fuzz_natsio: %s\n", what);
    abort();
}

static bool inside(const input_t *in, const char *p, size_t len)
{
    return p >= in->base && p <= in->base + in->size && len <= (size_t)(in->base + in->size - p);
}

static void touch(input_t *in, const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        in->sink += (unsigned char)p[i];
}

/* Looks up a few headers in [hdrs, hdrs + len); each value found must lie inside it, trimmed. */
static void check_headers(input_t *in, const char *hdrs, size_t len)
{
    mp_reply_t r = {.status = 200, .hdrs = hdrs, .hdrs_len = len};
    for (size_t i = 0; i < sizeof(header_names) / sizeof(header_names[0]); i++) {
        size_t vlen = (size_t)-1;
        const char *v = mp_reply_header(&r, header_names[i], &vlen);
        if (v == NULL)
            continue;
        if (hdrs == NULL || v < hdrs || v > hdrs + len || vlen > (size_t)(hdrs + len - v))
            die("a header value points outside its block");
        if (vlen > 0 && (v[0] == ' ' || v[vlen - 1] == '\r' || v[vlen - 1] == ' '))
            die("a header value is not trimmed");
        touch(in, v, vlen);
    }
}

static void check_msg(void *arg, const char *subject, size_t subject_len, const char *hdrs, size_t hdrs_len,
                      const char *data, size_t len)
{
    input_t *in = arg;
    if (!inside(in, subject, subject_len) || subject_len == 0)
        die("the subject is not inside the input");
    if (!inside(in, hdrs, hdrs_len) || !inside(in, data, len))
        die("headers or data are not inside the input");
    if (data != hdrs + hdrs_len)
        die("the data does not follow the headers");
    touch(in, subject, subject_len);
    touch(in, hdrs, hdrs_len);
    touch(in, data, len);
    if (hdrs_len > 0)
        check_headers(in, hdrs, hdrs_len);
}

static void check_req(void *arg, size_t sub, const char *subject, size_t subject_len, const char *reply,
                      size_t reply_len, const char *hdrs, size_t hdrs_len, const char *data, size_t len)
{
    input_t *in = arg;
    if (sub >= 2)
        die("a request for a subscription that does not exist");
    if (reply_len > 0 && !inside(in, reply, reply_len))
        die("the reply subject is not inside the input");
    touch(in, reply, reply_len);
    check_msg(arg, subject, subject_len, hdrs, hdrs_len, data, len);
}

static void check_state(void *arg, bool up)
{
}

/* A permissions violation names the refused subject (inside the -ERR line's copy, not the input) */
static void check_denied(void *arg, const char *subject, size_t subject_len)
{
    input_t *in = arg;
    if (subject == NULL || strnlen(subject, subject_len) != subject_len || subject[subject_len] != '"')
        die("a refused subject is not the quoted text of its -ERR line");
    touch(in, subject, subject_len);
}

static mp_natsio_t *client(input_t *in)
{
    static uv_loop_t loop;
    static mp_natsio_t *n;

    if (n == NULL) {
        int fd = open("/dev/null", O_WRONLY);
        mp_log_init("fuzz_natsio", MP_LOG_DEBUG); /* every log line is formatted (reads its fields), then dropped */
        if (fd >= 0)
            mp_log_set_fd(fd);
        uv_loop_init(&loop);
        n = mp_xcalloc(1, sizeof(*n));
        n->loop = &loop;
        n->name = mp_xstrdup("fuzz");
        n->subscribe = mp_xstrdup("_INBOX.fuzz.*");
        n->backoff_ms = 100;
        n->o.on_msg = check_msg;
        n->o.on_request = check_req;
        n->subs = mp_xcalloc(2, sizeof(*n->subs));
        n->subs[0] = (mp_natsio_sub_t){mp_xstrdup("user.v1.get"), mp_xstrdup("user")};
        n->subs[1] = (mp_natsio_sub_t){mp_xstrdup("$SRV.PING"), NULL};
        n->nsubs = 2;
        n->o.on_state = check_state;
        n->o.on_denied = check_denied;
        uv_prepare_init(&loop, &n->flusher);
        n->flusher.data = n;
    }
    n->o.arg = in;
    n->state = S_INFO;
    n->pings_out = 0;
    n->max_payload = 0;
    mp_buf_reset(&n->out);
    return n;
}

/* A copy of the input that ends right where an inaccessible page starts: libc reads past the end (strtoul skipping
 * whitespace, strlen), which ASan's interceptors do not see, fault there. As in production, the bytes are not
 * NUL-terminated (h2o's read buffer is not). */
static const char *guarded_copy(const uint8_t *data, size_t size)
{
    static char *region;
    static size_t region_size;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), need = (size + page - 1) / page * page;

    if (region == NULL || need > region_size) {
        if (region != NULL)
            munmap(region, region_size + page);
        region_size = need < page ? page : need;
        region = mmap(NULL, region_size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (region == MAP_FAILED || mprotect(region + region_size, page, PROT_NONE) != 0)
            die("cannot map the guarded input buffer");
    }
    char *copy = region + region_size - size;
    memcpy(copy, data, size);
    return copy;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input_t in = {guarded_copy(data, size), size, 0};
    mp_natsio_t *n = client(&in);

    /* on_read's loop */
    size_t off = 0;
    while (off < size) {
        long used = parse_one(n, in.base + off, size - off);
        if (used < 0 || used == 0 || n->state == S_TLS)
            break;
        if ((size_t)used > size - off)
            die("parse_one consumed more than it was given");
        off += (size_t)used;
    }
    if (n->state == S_TLS)
        die("TLS started without a TLS context");
    uv_prepare_stop(&n->flusher);

    check_headers(&in, in.base, size);
    sink_out = in.sink; /* keeps the reads */
    return 0;
}
