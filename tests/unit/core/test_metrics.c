/*
 * test_metrics.c: unit tests for core/metrics.c.
 *
 * Render output is compared as exact text, because Prometheus parses it and a
 * stray space or a "3.0" instead of "3" is a real bug. Every test starts and
 * ends with an empty registry (mp_metrics__reset), so none sees another's
 * families and ASan sees nothing leak.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "mp/buf.h"
#include "mp/metrics.h"

#define NTHREADS 4
#define NINCR 100000

static int reset(void **state)
{
    mp_metrics__reset();
    return 0;
}

/* Renders the registry and compares it with `want`; prints both on mismatch. */
static void assert_render(const char *want)
{
    mp_buf_t out = MP_BUF_INIT;
    mp_metrics_render(&out);
    const char *got = out.base ? out.base : "";
    int same = strcmp(got, want) == 0;
    if (!same)
        fprintf(stderr, "--- want\n%s--- got\n%s---\n", want, got);
    mp_buf_dispose(&out); /* before asserting: a failed assert longjmps past it */
    assert_true(same);
}

static void test_metrics_counter_add_renders_exact_text(void **state)
{
    mp_metric_t *m = mp_metrics_counter("moonport_requests_total", "Requests handled.", "method,status");
    mp_series_t *s = mp_metric_series(m, MP_LABELS("GET", "200"));
    mp_series_add(s, 1);
    mp_series_add(s, 2);
    mp_metric_add(m, MP_LABELS("POST", "500"), 1);
    assert_true(mp_series_value(s) == 3.0);
    assert_render("# HELP moonport_requests_total Requests handled.\n"
                  "# TYPE moonport_requests_total counter\n"
                  "moonport_requests_total{method=\"GET\",status=\"200\"} 3\n"
                  "moonport_requests_total{method=\"POST\",status=\"500\"} 1\n");
}

static void test_metrics_label_values_and_help_are_escaped(void **state)
{
    mp_metric_t *m = mp_metrics_counter("moonport_x_total", "a \\ back\nslash \"quoted\"", "path");
    mp_metric_add(m, MP_LABELS("a\"b\\c\nd"), 1);
    /* help escapes only backslash and newline; label values also escape the double quote */
    assert_render("# HELP moonport_x_total a \\\\ back\\nslash \"quoted\"\n"
                  "# TYPE moonport_x_total counter\n"
                  "moonport_x_total{path=\"a\\\"b\\\\c\\nd\"} 1\n");
}

static void test_metrics_histogram_buckets_are_cumulative(void **state)
{
    mp_metric_t *m = mp_metrics_histogram("moonport_latency_seconds", "Latency.", "route");
    mp_series_t *s = mp_metric_series(m, MP_LABELS("/v1/x"));
    mp_series_observe(s, 0.25); /* on a bound: counts in le="0.25" */
    mp_series_observe(s, 0.5);
    mp_series_observe(s, 2);
    mp_series_observe(s, 20); /* above every bound: only +Inf */
    assert_true(mp_series_value(s) == 4.0);
    assert_render("# HELP moonport_latency_seconds Latency.\n"
                  "# TYPE moonport_latency_seconds histogram\n"
                  "moonport_latency_seconds_bucket{route=\"/v1/x\",le=\"0.0005\"} 0\n"
                  "moonport_latency_seconds_bucket{route=\"/v1/x\",le=\"0.001\"} 0\n"
                  "moonport_latency_seconds_bucket{route=\"/v1/x\",le=\"0.0025\"} 0\n"
                  "moonport_latency_seconds_bucket{route=\"/v1/x\",le=\"0.005\"} 0\n"
                  "moonport_latency_seconds_bucket{route=\"/v1/x\",le=\"0.01\"} 0\n"
                  "moonport_latency_seconds_bucket{route=\"/v1/x\",le=\"0.025\"} 0\n"
                  "moonport_latency_seconds_bucket{route=\"/v1/x\",le=\"0.05\"} 0\n"
                  "moonport_latency_seconds_bucket{route=\"/v1/x\",le=\"0.1\"} 0\n"
                  "moonport_latency_seconds_bucket{route=\"/v1/x\",le=\"0.25\"} 1\n"
                  "moonport_latency_seconds_bucket{route=\"/v1/x\",le=\"0.5\"} 2\n"
                  "moonport_latency_seconds_bucket{route=\"/v1/x\",le=\"1\"} 2\n"
                  "moonport_latency_seconds_bucket{route=\"/v1/x\",le=\"2.5\"} 3\n"
                  "moonport_latency_seconds_bucket{route=\"/v1/x\",le=\"5\"} 3\n"
                  "moonport_latency_seconds_bucket{route=\"/v1/x\",le=\"10\"} 3\n"
                  "moonport_latency_seconds_bucket{route=\"/v1/x\",le=\"+Inf\"} 4\n"
                  "moonport_latency_seconds_sum{route=\"/v1/x\"} 22.75\n"
                  "moonport_latency_seconds_count{route=\"/v1/x\"} 4\n");
}

static void test_metrics_histogram_custom_buckets_without_labels(void **state)
{
    static const double b[] = {1e-05, 0.3, 1234567, 1234567.125};
    mp_metric_t *m = mp_metrics_family(MP_METRIC_HISTOGRAM, "moonport_h", "H.", NULL, b, 4);
    mp_metric_observe(m, NULL, 0.1);
    assert_ptr_equal(mp_metric_series(m, NULL), mp_metric_series(m, NULL));
    /* bounds print in their shortest exact form; the sum is not integral so it gets %.17g */
    assert_render("# HELP moonport_h H.\n"
                  "# TYPE moonport_h histogram\n"
                  "moonport_h_bucket{le=\"1e-05\"} 0\n"
                  "moonport_h_bucket{le=\"0.3\"} 1\n"
                  "moonport_h_bucket{le=\"1234567\"} 1\n"
                  "moonport_h_bucket{le=\"1234567.125\"} 1\n"
                  "moonport_h_bucket{le=\"+Inf\"} 1\n"
                  "moonport_h_sum 0.10000000000000001\n"
                  "moonport_h_count 1\n");
}

static void test_metrics_gauge_set_replaces_value(void **state)
{
    mp_series_t *s = mp_metric_series(mp_metrics_gauge("moonport_pool_size", "Pool size.", ""), NULL);
    mp_series_set(s, 10);
    mp_series_add(s, -3);
    assert_true(mp_series_value(s) == 7.0);
    mp_series_set(s, 2.5);
    mp_series_t *big = mp_metric_series(mp_metrics_gauge("moonport_big", "Big.", "k"), MP_LABELS("2^53"));
    mp_series_set(big, 9007199254740992.0);
    mp_series_t *neg = mp_metric_series(mp_metrics_gauge("moonport_big", "Big.", "k"), MP_LABELS("neg"));
    mp_series_set(neg, -4);
    assert_render("# HELP moonport_big Big.\n"
                  "# TYPE moonport_big gauge\n"
                  "moonport_big{k=\"2^53\"} 9007199254740992\n"
                  "moonport_big{k=\"neg\"} -4\n"
                  "# HELP moonport_pool_size Pool size.\n"
                  "# TYPE moonport_pool_size gauge\n"
                  "moonport_pool_size 2.5\n");
}

static void test_metrics_same_family_returned_twice(void **state)
{
    mp_metric_t *a = mp_metrics_counter("moonport_a_total", "A.", "x,y");
    mp_metric_t *b = mp_metrics_counter("moonport_a_total", "A.", "x, y"); /* spaces are not significant */
    assert_non_null(a);
    assert_ptr_equal(a, b);
    mp_series_t *s1 = mp_metric_series(a, MP_LABELS("1", "2"));
    mp_series_t *s2 = mp_metric_series(b, MP_LABELS("1", "2"));
    mp_series_t *s3 = mp_metric_series(a, MP_LABELS("12", ""));
    assert_ptr_equal(s1, s2);
    assert_ptr_not_equal(s1, s3);
    assert_ptr_not_equal(a, mp_metrics_counter("moonport_b_total", "B.", "x,y"));
}

static void test_metrics_series_pointers_survive_table_growth(void **state)
{
    mp_metric_t *m = mp_metrics_counter("moonport_many_total", "Many.", "i");
    mp_series_t *first = mp_metric_series(m, MP_LABELS("0"));
    mp_series_add(first, 5);
    for (int i = 1; i < 1000; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        mp_series_add(mp_metric_series(m, MP_LABELS(v)), 1);
    }
    assert_ptr_equal(mp_metric_series(m, MP_LABELS("0")), first);
    assert_true(mp_series_value(first) == 5.0);
    assert_true(mp_series_value(mp_metric_series(m, MP_LABELS("999"))) == 1.0);
}

static void *add_many(void *arg)
{
    mp_series_t **s = arg;
    for (int i = 0; i < NINCR; i++) {
        mp_series_add(s[0], 1);
        mp_series_observe(s[1], 0.001);
    }
    return NULL;
}

static void test_metrics_concurrent_increments_are_exact(void **state)
{
    mp_series_t *s[2] = {mp_metric_series(mp_metrics_counter("moonport_c_total", "C.", NULL), NULL),
                         mp_metric_series(mp_metrics_histogram("moonport_h_seconds", "H.", NULL), NULL)};
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, add_many, s), 0);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    assert_true(mp_series_value(s[0]) == (double)NTHREADS * NINCR);
    assert_true(mp_series_value(s[1]) == (double)NTHREADS * NINCR);
}

static void test_metrics_render_sorts_families(void **state)
{
    mp_metrics_gauge("moonport_zeta", "Z.", NULL);
    mp_metrics_counter("moonport_alpha_total", "A.", NULL);
    mp_metrics_gauge("moonport_mid", "M.", "k"); /* labelled and empty: HELP and TYPE only */
    assert_render("# HELP moonport_alpha_total A.\n"
                  "# TYPE moonport_alpha_total counter\n"
                  "moonport_alpha_total 0\n"
                  "# HELP moonport_mid M.\n"
                  "# TYPE moonport_mid gauge\n"
                  "# HELP moonport_zeta Z.\n"
                  "# TYPE moonport_zeta gauge\n"
                  "moonport_zeta 0\n");
}

static void on_collect(void *arg)
{
    int *calls = arg;
    (*calls)++;
    mp_series_set(mp_metric_series(mp_metrics_gauge("moonport_queue_depth", "Depth.", NULL), NULL), *calls * 10);
}

static void test_metrics_collect_callback_runs_each_render(void **state)
{
    int calls = 0;
    mp_metrics_on_collect(on_collect, &calls);
    assert_int_equal(calls, 0);
    mp_buf_t out = MP_BUF_INIT;
    mp_metrics_render(&out);
    assert_int_equal(calls, 1);
    mp_buf_dispose(&out);
    /* the callback creates and sets the gauge before the families are rendered */
    assert_render("# HELP moonport_queue_depth Depth.\n"
                  "# TYPE moonport_queue_depth gauge\n"
                  "moonport_queue_depth 20\n");
    assert_int_equal(calls, 2);
}

/* Runs `fn` in a child and reports whether it died of SIGABRT; stderr is silenced. */
static int aborts(void (*fn)(void))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (freopen("/dev/null", "w", stderr) == NULL)
            _exit(2);
        fn();
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

static void redefine_type(void)
{
    mp_metrics_counter("moonport_t", "T.", "a");
    mp_metrics_gauge("moonport_t", "T.", "a");
}

static void redefine_labels(void)
{
    mp_metrics_counter("moonport_t", "T.", "a");
    mp_metrics_counter("moonport_t", "T.", "a,b");
}

static void redefine_nothing(void)
{
    mp_metrics_counter("moonport_t", "T.", "a");
    mp_metrics_counter("moonport_t", "Other help is fine.", "a");
}

static void test_metrics_mismatched_redefinition_aborts(void **state)
{
    assert_true(aborts(redefine_type));
    assert_true(aborts(redefine_labels));
    assert_false(aborts(redefine_nothing));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_counter_add_renders_exact_text, reset, reset),
        cmocka_unit_test_setup_teardown(test_metrics_label_values_and_help_are_escaped, reset, reset),
        cmocka_unit_test_setup_teardown(test_metrics_histogram_buckets_are_cumulative, reset, reset),
        cmocka_unit_test_setup_teardown(test_metrics_histogram_custom_buckets_without_labels, reset, reset),
        cmocka_unit_test_setup_teardown(test_metrics_gauge_set_replaces_value, reset, reset),
        cmocka_unit_test_setup_teardown(test_metrics_same_family_returned_twice, reset, reset),
        cmocka_unit_test_setup_teardown(test_metrics_series_pointers_survive_table_growth, reset, reset),
        cmocka_unit_test_setup_teardown(test_metrics_concurrent_increments_are_exact, reset, reset),
        cmocka_unit_test_setup_teardown(test_metrics_render_sorts_families, reset, reset),
        cmocka_unit_test_setup_teardown(test_metrics_collect_callback_runs_each_render, reset, reset),
        cmocka_unit_test_setup_teardown(test_metrics_mismatched_redefinition_aborts, reset, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
