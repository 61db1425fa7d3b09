/*
 * metrics.c: the process-wide Prometheus registry (see mp/metrics.h).
 *
 * The registry is a name-sorted array of families under one mutex, so render
 * walks it in order and lookups are a binary search. Each family hashes its
 * series by label values under its own mutex; a series is allocated on its
 * own and never moved or freed (until mp_metrics__reset), which is what lets
 * hot paths keep the pointer.
 *
 * Values are doubles stored as bit patterns in _Atomic uint64_t and updated
 * with compare-exchange loops, so updates never take a lock. Histograms keep
 * per-bucket (non-cumulative) counts; render sums them, and takes `_count`
 * from that same sum so the +Inf bucket and `_count` always agree.
 *
 * Lock order: registry, then family. Collect callbacks run with no lock held.
 */
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/buf.h"
#include "mp/metrics.h"

struct mp_series {
    mp_metric_t *family;
    mp_series_t *hnext; /* hash chain */
    mp_series_t *next;  /* creation order, for render */
    uint64_t hash;
    char **values;             /* family->nlabels copies */
    _Atomic uint64_t value;    /* double bits: counter/gauge value, histogram sum */
    _Atomic uint64_t counts[]; /* histograms: nbounds + 1 per-bucket counts, the last is +Inf */
};

struct mp_metric {
    char *name;
    char *help;
    mp_metric_type_t type;
    size_t nlabels;
    char **labels;
    size_t nbounds; /* finite upper bounds; +Inf is implied */
    double *bounds;
    char **le; /* rendered bounds, nbounds + 1 with "+Inf" last */
    pthread_mutex_t lock;
    mp_series_t **table;
    size_t tablesize;
    size_t nseries;
    mp_series_t *first, *last;
};

typedef struct collect {
    mp_metrics_collect_cb cb;
    void *arg;
    struct collect *next;
} collect_t;

const double mp_metrics_latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const size_t mp_metrics_latency_nbuckets = sizeof(mp_metrics_latency_buckets) / sizeof(mp_metrics_latency_buckets[0]);

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static mp_metric_t **families; /* sorted by name */
static size_t nfamilies, capfamilies;
static collect_t *collect_head, *collect_tail;
static size_t ncollect;

static void misuse(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void misuse(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mp_metrics: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* Type punning through a union is defined in C11 (6.5.2.3 footnote 95). */
typedef union {
    double d;
    uint64_t u;
} bits_t;

static double u2d(uint64_t u)
{
    return ((bits_t){.u = u}).d;
}

static uint64_t d2u(double d)
{
    return ((bits_t){.d = d}).u;
}

static void atomic_add_double(_Atomic uint64_t *p, double v)
{
    /* relaxed is enough: a metric orders nothing else, it only must not lose updates */
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed), new;
    do
        new = d2u(u2d(old) + v);
    while (!atomic_compare_exchange_weak_explicit(p, &old, new, memory_order_relaxed, memory_order_relaxed));
}

static int valid_name(const char *s, size_t len, int colon_ok)
{
    if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              (colon_ok && c == ':')))
            return 0;
    }
    return 1;
}

/* Splits "a, b,c" into label names; any malformed list is a bug in the caller. */
static void parse_labels(mp_metric_t *m, const char *labels)
{
    const char *p = labels ? labels : "";
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0')
        return;
    for (;;) {
        const char *end = p + strcspn(p, ",");
        const char *s = p, *e = end;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (!valid_name(s, (size_t)(e - s), 0) || (e - s >= 2 && s[0] == '_' && s[1] == '_'))
            misuse("%s: bad label name in \"%s\"", m->name, labels);
        if (m->type == MP_METRIC_HISTOGRAM && e - s == 2 && memcmp(s, "le", 2) == 0)
            misuse("%s: \"le\" is reserved for histograms", m->name);
        m->labels = mp_xrealloc(m->labels, (m->nlabels + 1) * sizeof(*m->labels));
        m->labels[m->nlabels++] = mp_xstrndup(s, (size_t)(e - s));
        for (size_t i = 0; i + 1 < m->nlabels; i++)
            if (strcmp(m->labels[i], m->labels[m->nlabels - 1]) == 0)
                misuse("%s: duplicate label \"%s\"", m->name, m->labels[i]);
        if (*end == '\0')
            break;
        p = end + 1;
    }
}

/* Plain %g ("10", "0.0005", "1e-05") unless six digits lose precision; then the fewest digits that read back
 * as the same double, since `le` must name the exact bound the observations were compared against. */
static char *format_bound(double b)
{
    char tmp[32];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, b);
        if (strtod(tmp, NULL) == b)
            break;
    }
    return mp_xstrdup(tmp);
}

static void set_buckets(mp_metric_t *m, const double *buckets, size_t nbuckets)
{
    if (buckets == NULL) {
        buckets = mp_metrics_latency_buckets;
        nbuckets = mp_metrics_latency_nbuckets;
    }
    /* +Inf is always implied; accept it spelled out too */
    if (nbuckets > 0 && isinf(buckets[nbuckets - 1]) && buckets[nbuckets - 1] > 0)
        nbuckets--;
    m->nbounds = nbuckets;
    m->bounds = mp_xmalloc((nbuckets ? nbuckets : 1) * sizeof(*m->bounds));
    m->le = mp_xmalloc((nbuckets + 1) * sizeof(*m->le));
    for (size_t i = 0; i < nbuckets; i++) {
        if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])))
            misuse("%s: buckets must be finite and strictly ascending", m->name);
        m->bounds[i] = buckets[i];
        m->le[i] = format_bound(buckets[i]);
    }
    m->le[nbuckets] = mp_xstrdup("+Inf");
}

static mp_metric_t *family_new(mp_metric_type_t type, const char *name, const char *help, const char *labels,
                               const double *buckets, size_t nbuckets)
{
    if (name == NULL || !valid_name(name, strlen(name), 1))
        misuse("bad metric name \"%s\"", name ? name : "(null)");
    if (type != MP_METRIC_COUNTER && type != MP_METRIC_GAUGE && type != MP_METRIC_HISTOGRAM)
        misuse("%s: bad metric type %d", name, (int)type);
    mp_metric_t *m = mp_xcalloc(1, sizeof(*m));
    m->name = mp_xstrdup(name);
    m->help = mp_xstrdup(help ? help : "");
    m->type = type;
    m->tablesize = 8;
    m->table = mp_xcalloc(m->tablesize, sizeof(*m->table));
    parse_labels(m, labels);
    if (type == MP_METRIC_HISTOGRAM)
        set_buckets(m, buckets, nbuckets);
    return m;
}

static void family_free(mp_metric_t *m)
{
    for (mp_series_t *s = m->first, *next; s != NULL; s = next) {
        next = s->next;
        for (size_t i = 0; i < m->nlabels; i++)
            free(s->values[i]);
        free(s->values);
        free(s);
    }
    for (size_t i = 0; i < m->nlabels; i++)
        free(m->labels[i]);
    for (size_t i = 0; m->le != NULL && i <= m->nbounds; i++)
        free(m->le[i]);
    free(m->labels);
    free(m->le);
    free(m->bounds);
    free(m->table);
    free(m->name);
    free(m->help);
    free(m);
}

static int family_matches(const mp_metric_t *a, const mp_metric_t *b)
{
    if (a->type != b->type || a->nlabels != b->nlabels || a->nbounds != b->nbounds)
        return 0;
    for (size_t i = 0; i < a->nlabels; i++)
        if (strcmp(a->labels[i], b->labels[i]) != 0)
            return 0;
    for (size_t i = 0; i < a->nbounds; i++)
        if (a->bounds[i] != b->bounds[i])
            return 0;
    return 1;
}

/* Index of `name` in the sorted array, or where it would go; caller holds registry_lock. */
static size_t family_search(const char *name, int *found)
{
    size_t lo = 0, hi = nfamilies;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(families[mid]->name, name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

mp_metric_t *mp_metrics_family(mp_metric_type_t type, const char *name, const char *help, const char *labels,
                               const double *buckets, size_t nbuckets)
{
    /* build and validate outside the lock; a duplicate is compared and thrown away */
    mp_metric_t *cand = family_new(type, name, help, labels, buckets, nbuckets), *m;
    int found;
    pthread_mutex_lock(&registry_lock);
    size_t at = family_search(name, &found);
    if (found) {
        m = families[at];
        pthread_mutex_unlock(&registry_lock);
        if (!family_matches(m, cand))
            misuse("%s: registered again with a different type, labels or buckets", name);
        family_free(cand);
        return m;
    }
    if (nfamilies == capfamilies) {
        capfamilies = capfamilies ? capfamilies * 2 : 16;
        families = mp_xrealloc(families, capfamilies * sizeof(*families));
    }
    memmove(families + at + 1, families + at, (nfamilies - at) * sizeof(*families));
    pthread_mutex_init(&cand->lock, NULL);
    families[at] = m = cand;
    nfamilies++;
    pthread_mutex_unlock(&registry_lock);
    return m;
}

mp_metric_t *mp_metrics_counter(const char *name, const char *help, const char *labels)
{
    return mp_metrics_family(MP_METRIC_COUNTER, name, help, labels, NULL, 0);
}

mp_metric_t *mp_metrics_gauge(const char *name, const char *help, const char *labels)
{
    return mp_metrics_family(MP_METRIC_GAUGE, name, help, labels, NULL, 0);
}

mp_metric_t *mp_metrics_histogram(const char *name, const char *help, const char *labels)
{
    return mp_metrics_family(MP_METRIC_HISTOGRAM, name, help, labels, NULL, 0);
}

/* FNV-1a over the values with their NULs, so ("a","bc") and ("ab","c") differ. */
static uint64_t hash_values(const char *const *values, size_t n)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = (const unsigned char *)values[i];
        do {
            h ^= *p;
            h *= 1099511628211ULL;
        } while (*p++ != '\0');
    }
    return h;
}

static void table_grow(mp_metric_t *m)
{
    size_t size = m->tablesize * 2;
    mp_series_t **table = mp_xcalloc(size, sizeof(*table));
    /* only the chain links move; the series themselves stay where they are */
    for (mp_series_t *s = m->first; s != NULL; s = s->next) {
        s->hnext = table[s->hash & (size - 1)];
        table[s->hash & (size - 1)] = s;
    }
    free(m->table);
    m->table = table;
    m->tablesize = size;
}

/* Finds or creates the series; caller holds m->lock. */
static mp_series_t *series_get_locked(mp_metric_t *m, const char *const *values, uint64_t hash)
{
    mp_series_t **head = &m->table[hash & (m->tablesize - 1)];
    for (mp_series_t *s = *head; s != NULL; s = s->hnext) {
        size_t i = 0;
        while (s->hash == hash && i < m->nlabels && strcmp(s->values[i], values[i]) == 0)
            i++;
        if (s->hash == hash && i == m->nlabels)
            return s;
    }
    size_t ncounts = m->type == MP_METRIC_HISTOGRAM ? m->nbounds + 1 : 0;
    mp_series_t *s = mp_xcalloc(1, sizeof(*s) + ncounts * sizeof(s->counts[0]));
    s->family = m;
    s->hash = hash;
    s->values = mp_xcalloc(m->nlabels, sizeof(*s->values));
    for (size_t i = 0; i < m->nlabels; i++)
        s->values[i] = mp_xstrdup(values[i]);
    atomic_init(&s->value, d2u(0.0));
    for (size_t i = 0; i < ncounts; i++)
        atomic_init(&s->counts[i], 0);
    s->hnext = *head;
    *head = s;
    *(m->last != NULL ? &m->last->next : &m->first) = s;
    m->last = s;
    if (++m->nseries > m->tablesize)
        table_grow(m);
    return s;
}

mp_series_t *mp_metric_series(mp_metric_t *m, const char *const *values)
{
    if (m->nlabels != 0 && values == NULL)
        misuse("%s: %zu label values required", m->name, m->nlabels);
    for (size_t i = 0; i < m->nlabels; i++)
        if (values[i] == NULL)
            misuse("%s: label value %zu is NULL", m->name, i);
    uint64_t hash = hash_values(values, m->nlabels);
    pthread_mutex_lock(&m->lock);
    mp_series_t *s = series_get_locked(m, values, hash);
    pthread_mutex_unlock(&m->lock);
    return s;
}

void mp_series_add(mp_series_t *s, double v)
{
    assert(s->family->type != MP_METRIC_HISTOGRAM);
    assert(s->family->type != MP_METRIC_COUNTER || v >= 0);
    atomic_add_double(&s->value, v);
}

void mp_series_set(mp_series_t *s, double v)
{
    assert(s->family->type == MP_METRIC_GAUGE);
    atomic_store_explicit(&s->value, d2u(v), memory_order_relaxed);
}

void mp_series_observe(mp_series_t *s, double v)
{
    const mp_metric_t *m = s->family;
    assert(m->type == MP_METRIC_HISTOGRAM);
    /* linear scan: bucket lists are short and this stays branch-predictable */
    size_t i = 0;
    while (i < m->nbounds && !(v <= m->bounds[i]))
        i++;
    atomic_fetch_add_explicit(&s->counts[i], 1, memory_order_relaxed);
    atomic_add_double(&s->value, v);
}

double mp_series_value(const mp_series_t *s)
{
    if (s->family->type != MP_METRIC_HISTOGRAM)
        return u2d(atomic_load_explicit(&s->value, memory_order_relaxed));
    /* the count is the bucket total, exactly what render prints as `_count` */
    uint64_t n = 0;
    for (size_t i = 0; i <= s->family->nbounds; i++)
        n += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
    return (double)n;
}

void mp_metric_add(mp_metric_t *m, const char *const *values, double v)
{
    mp_series_add(mp_metric_series(m, values), v);
}

void mp_metric_observe(mp_metric_t *m, const char *const *values, double v)
{
    mp_series_observe(mp_metric_series(m, values), v);
}

void mp_metrics_on_collect(mp_metrics_collect_cb cb, void *arg)
{
    collect_t *c = mp_xcalloc(1, sizeof(*c));
    c->cb = cb;
    c->arg = arg;
    pthread_mutex_lock(&registry_lock);
    if (collect_tail != NULL)
        collect_tail->next = c;
    else
        collect_head = c;
    collect_tail = c;
    ncollect++;
    pthread_mutex_unlock(&registry_lock);
}

static void put_escaped(mp_buf_t *out, const char *s, int quote)
{
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '\\')
            mp_buf_append(out, "\\\\", 2);
        else if (*p == '\n')
            mp_buf_append(out, "\\n", 2);
        else if (quote && *p == '"')
            mp_buf_append(out, "\\\"", 2);
        else
            mp_buf_append(out, p, 1);
    }
}

static void put_value(mp_buf_t *out, double v)
{
    if (isnan(v))
        mp_buf_puts(out, "NaN");
    else if (isinf(v))
        mp_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    else if (fabs(v) < 9007199254740992.0 && v == (double)(int64_t)v)
        mp_buf_printf(out, "%" PRId64, (int64_t)v);
    else
        mp_buf_printf(out, "%.17g", v);
}

/* Writes `{l1="v1",...,le="x"}`, or nothing when there is neither a label nor `le`. */
static void put_labels(mp_buf_t *out, const mp_metric_t *m, const mp_series_t *s, const char *le)
{
    if (m->nlabels == 0 && le == NULL)
        return;
    mp_buf_append(out, "{", 1);
    for (size_t i = 0; i < m->nlabels; i++) {
        mp_buf_printf(out, "%s%s=\"", i ? "," : "", m->labels[i]);
        put_escaped(out, s->values[i], 1);
        mp_buf_append(out, "\"", 1);
    }
    if (le != NULL)
        mp_buf_printf(out, "%sle=\"%s\"", m->nlabels ? "," : "", le);
    mp_buf_append(out, "}", 1);
}

/* Writes one sample line: `name<suffix>{labels} value`. */
static void put_sample(mp_buf_t *out, const mp_metric_t *m, const mp_series_t *s, const char *suffix, const char *le,
                       double v)
{
    mp_buf_printf(out, "%s%s", m->name, suffix);
    put_labels(out, m, s, le);
    mp_buf_append(out, " ", 1);
    put_value(out, v);
    mp_buf_append(out, "\n", 1);
}

static void render_series(mp_buf_t *out, const mp_metric_t *m, const mp_series_t *s)
{
    double v = u2d(atomic_load_explicit(&s->value, memory_order_relaxed));
    if (m->type != MP_METRIC_HISTOGRAM) {
        put_sample(out, m, s, "", NULL, v);
        return;
    }
    uint64_t cum = 0;
    for (size_t i = 0; i <= m->nbounds; i++) {
        cum += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
        put_sample(out, m, s, "_bucket", m->le[i], (double)cum);
    }
    put_sample(out, m, s, "_sum", NULL, v);
    put_sample(out, m, s, "_count", NULL, (double)cum);
}

static void render_family(mp_buf_t *out, mp_metric_t *m)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    mp_buf_printf(out, "# HELP %s%s", m->name, m->help[0] ? " " : "");
    put_escaped(out, m->help, 0);
    mp_buf_printf(out, "\n# TYPE %s %s\n", m->name, type_names[m->type]);
    pthread_mutex_lock(&m->lock);
    /* an unlabelled metric always exists, even before its first update */
    if (m->nlabels == 0 && m->first == NULL)
        series_get_locked(m, NULL, hash_values(NULL, 0));
    for (const mp_series_t *s = m->first; s != NULL; s = s->next)
        render_series(out, m, s);
    pthread_mutex_unlock(&m->lock);
}

void mp_metrics_render(mp_buf_t *out)
{
    pthread_mutex_lock(&registry_lock);
    collect_t *c = collect_head;
    size_t n = ncollect;
    pthread_mutex_unlock(&registry_lock);
    /* callbacks create and update metrics themselves, so no lock may be held; the first n nodes never change */
    for (size_t i = 0; i < n; i++, c = c->next)
        c->cb(c->arg);
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < nfamilies; i++)
        render_family(out, families[i]);
    pthread_mutex_unlock(&registry_lock);
}

void mp_metrics__reset(void)
{
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < nfamilies; i++) {
        pthread_mutex_destroy(&families[i]->lock);
        family_free(families[i]);
    }
    free(families);
    families = NULL;
    nfamilies = capfamilies = 0;
    for (collect_t *c = collect_head, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    collect_head = collect_tail = NULL;
    ncollect = 0;
    pthread_mutex_unlock(&registry_lock);
}
