/*
 * test_fiber.c: unit tests for core/fiber.c: waits on descriptors and deadlines, park and wake (same thread, other
 * thread, wake before park), per-fiber error text and deadline, the fiber limit and reuse, and a sleep that lets the
 * other fibers of its thread run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "mp/fiber.h"

typedef struct pipe_case {
    int fds[2];
    int result;
    int steps;
} pipe_case_t;

static void read_one(void *arg)
{
    pipe_case_t *c = arg;
    c->steps = 1;
    c->result = mp_fiber_wait_fd(c->fds[0], POLLIN, mp_mono_ms() + 5000);
    c->steps = 2;
}

static void test_a_fiber_waits_for_its_descriptor_and_the_thread_goes_on(void **state)
{
    (void)state;
    mp_sched_t *s;
    pipe_case_t c = {.result = -7};
    assert_int_equal(pipe(c.fds), 0);
    assert_int_equal(mp_sched_create(&s, 4, 64), MP_OK);
    assert_true(mp_sched_spawn(s, read_one, &c));
    assert_int_equal(c.steps, 1); /* parked at its wait, and we are back */
    assert_int_equal(mp_sched_alive(s), 1);
    mp_sched_run(s, 0);
    assert_int_equal(c.steps, 1); /* nothing to read yet */
    assert_int_equal(write(c.fds[1], "x", 1), 1);
    mp_sched_run(s, 1000);
    assert_int_equal(c.steps, 2);
    assert_int_equal(c.result, 1);
    assert_int_equal(mp_sched_alive(s), 0);
    mp_sched_destroy(s);
    close(c.fds[0]);
    close(c.fds[1]);
}

static void wait_briefly(void *arg)
{
    pipe_case_t *c = arg;
    c->result = mp_fiber_wait_fd(c->fds[0], POLLIN, mp_mono_ms() + 30);
    c->steps = 2;
}

static void test_a_wait_ends_at_its_deadline_and_a_late_event_wakes_nobody(void **state)
{
    (void)state;
    mp_sched_t *s;
    pipe_case_t c = {.result = -7};
    assert_int_equal(pipe(c.fds), 0);
    assert_int_equal(mp_sched_create(&s, 4, 64), MP_OK);
    int64_t t0 = mp_mono_ms();
    assert_true(mp_sched_spawn(s, wait_briefly, &c));
    while (mp_sched_alive(s) > 0 && mp_mono_ms() - t0 < 2000)
        mp_sched_run(s, 500);
    assert_int_equal(c.result, 0);
    assert_true(mp_mono_ms() - t0 >= 30);
    /* the descriptor was disarmed: data arriving now must not resume a finished fiber */
    assert_int_equal(write(c.fds[1], "x", 1), 1);
    mp_sched_run(s, 20);
    assert_int_equal(mp_sched_alive(s), 0);
    mp_sched_destroy(s);
    close(c.fds[0]);
    close(c.fds[1]);
}

typedef struct park_case {
    mp_fiber_t *f;
    bool woken;
    int done;
    int64_t at;
} park_case_t;

static void park_once(void *arg)
{
    park_case_t *c = arg;
    c->f = mp_fiber_current();
    c->woken = mp_fiber_park(c->at);
    c->done = 1;
}

static void *wake_later(void *arg)
{
    park_case_t *c = arg;
    usleep(20000);
    mp_fiber_wake(c->f);
    return NULL;
}

static void test_a_fiber_parked_is_woken_from_another_thread(void **state)
{
    (void)state;
    mp_sched_t *s;
    park_case_t c = {0};
    pthread_t t;
    assert_int_equal(mp_sched_create(&s, 4, 64), MP_OK);
    assert_true(mp_sched_spawn(s, park_once, &c));
    assert_int_equal(c.done, 0);
    assert_int_equal(pthread_create(&t, NULL, wake_later, &c), 0);
    int64_t t0 = mp_mono_ms();
    while (!c.done && mp_mono_ms() - t0 < 2000)
        mp_sched_run(s, -1); /* only the wake's kick can end this wait */
    pthread_join(t, NULL);
    assert_int_equal(c.done, 1);
    assert_true(c.woken);
    mp_sched_destroy(s);
}

static void wake_then_park(void *arg)
{
    park_case_t *c = arg;
    mp_fiber_wake(mp_fiber_current()); /* the wake comes first ... */
    c->woken = mp_fiber_park(0);       /* ... so this returns at once instead of forever */
    c->done = 1;
}

static void test_a_wake_before_the_park_is_kept(void **state)
{
    (void)state;
    mp_sched_t *s;
    park_case_t c = {0};
    assert_int_equal(mp_sched_create(&s, 4, 64), MP_OK);
    assert_true(mp_sched_spawn(s, wake_then_park, &c));
    assert_int_equal(c.done, 1);
    assert_true(c.woken);
    mp_sched_destroy(s);
}

static void test_a_park_ends_at_its_deadline_unwoken(void **state)
{
    (void)state;
    mp_sched_t *s;
    park_case_t c = {.woken = true};
    assert_int_equal(mp_sched_create(&s, 4, 64), MP_OK);
    c.at = mp_mono_ms() + 20;
    assert_true(mp_sched_spawn(s, park_once, &c));
    int64_t t0 = mp_mono_ms();
    while (!c.done && mp_mono_ms() - t0 < 2000)
        mp_sched_run(s, 500);
    assert_int_equal(c.done, 1);
    assert_false(c.woken);
    mp_sched_destroy(s);
}

typedef struct err_case {
    int fds[2];
    const char *mine;
    char seen[64];
    int64_t deadline_seen;
    int64_t deadline_set;
} err_case_t;

static void set_wait_read(void *arg)
{
    err_case_t *c = arg;
    mp_err_set(MP_EINVAL, "%s", c->mine);
    *mp_fiber_deadline() = c->deadline_set;
    mp_fiber_wait_fd(c->fds[0], POLLIN, mp_mono_ms() + 2000);
    snprintf(c->seen, sizeof(c->seen), "%s", mp_err_get());
    c->deadline_seen = *mp_fiber_deadline();
}

static void test_error_text_and_deadline_belong_to_each_fiber(void **state)
{
    (void)state;
    mp_sched_t *s;
    err_case_t a = {.mine = "from a", .deadline_set = 111}, b = {.mine = "from b", .deadline_set = 222};
    assert_int_equal(pipe(a.fds), 0);
    assert_int_equal(pipe(b.fds), 0);
    mp_err_set(MP_EINVAL, "the thread's own");
    *mp_fiber_deadline() = 999;
    assert_int_equal(mp_sched_create(&s, 4, 64), MP_OK);
    assert_true(mp_sched_spawn(s, set_wait_read, &a));
    assert_true(mp_sched_spawn(s, set_wait_read, &b)); /* overwrites nothing of a's */
    assert_int_equal(write(a.fds[1], "x", 1), 1);
    assert_int_equal(write(b.fds[1], "x", 1), 1);
    int64_t t0 = mp_mono_ms();
    while (mp_sched_alive(s) > 0 && mp_mono_ms() - t0 < 3000)
        mp_sched_run(s, 100);
    assert_string_equal(a.seen, "from a");
    assert_string_equal(b.seen, "from b");
    assert_int_equal(a.deadline_seen, 111);
    assert_int_equal(b.deadline_seen, 222);
    assert_string_equal(mp_err_get(), "the thread's own");
    assert_int_equal(*mp_fiber_deadline(), 999);
    *mp_fiber_deadline() = 0;
    mp_sched_destroy(s);
    for (int i = 0; i < 2; i++) {
        close(a.fds[i]);
        close(b.fds[i]);
    }
}

static void count_up(void *arg)
{
    ++*(int *)arg;
}

static void test_the_limit_holds_and_finished_fibers_are_reused(void **state)
{
    (void)state;
    mp_sched_t *s;
    park_case_t c1 = {0}, c2 = {0}, c3 = {0};
    int runs = 0;
    assert_int_equal(mp_sched_create(&s, 2, 64), MP_OK);
    assert_true(mp_sched_spawn(s, park_once, &c1));
    assert_true(mp_sched_spawn(s, park_once, &c2));
    assert_false(mp_sched_spawn(s, park_once, &c3)); /* two alive: the limit */
    mp_fiber_wake(c1.f);
    mp_fiber_wake(c2.f);
    mp_sched_run(s, 0);
    assert_int_equal(mp_sched_alive(s), 0);
    for (int i = 0; i < 10000; i++)
        assert_true(mp_sched_spawn(s, count_up, &runs));
    assert_int_equal(runs, 10000);
    mp_sched_destroy(s);
}

typedef struct sleep_case {
    int64_t slept_from, slept_until, other_ran_at;
} sleep_case_t;

static void sleep_100(void *arg)
{
    sleep_case_t *c = arg;
    c->slept_from = mp_mono_ms();
    mp_fiber_sleep(100);
    c->slept_until = mp_mono_ms();
}

static void run_meanwhile(void *arg)
{
    sleep_case_t *c = arg;
    mp_fiber_sleep(10);
    c->other_ran_at = mp_mono_ms();
}

static void test_a_sleeping_fiber_lets_the_others_of_its_thread_run(void **state)
{
    (void)state;
    mp_sched_t *s;
    sleep_case_t c = {0};
    assert_int_equal(mp_sched_create(&s, 4, 64), MP_OK);
    assert_true(mp_sched_spawn(s, sleep_100, &c));
    assert_true(mp_sched_spawn(s, run_meanwhile, &c));
    int64_t t0 = mp_mono_ms();
    while (mp_sched_alive(s) > 0 && mp_mono_ms() - t0 < 2000)
        mp_sched_run(s, 500);
    assert_int_equal(mp_sched_alive(s), 0);
    assert_true(c.slept_until - c.slept_from >= 100);
    /* usleep() would have held the thread: the other fiber could only have run after the 100 ms */
    assert_true(c.other_ran_at > 0 && c.other_ran_at < c.slept_until);
    mp_sched_destroy(s);
}

static void test_outside_a_fiber_waits_block_as_before(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_null(mp_fiber_current());
    assert_int_equal(mp_fiber_wait_fd(fds[0], POLLIN, mp_mono_ms() + 20), 0);
    assert_int_equal(write(fds[1], "x", 1), 1);
    assert_int_equal(mp_fiber_wait_fd(fds[0], POLLIN, mp_mono_ms() + 1000), 1);
    assert_false(mp_fiber_park(0)); /* nothing to park: returns instead of hanging */
    int64_t t0 = mp_mono_ms();
    mp_fiber_sleep(20);
    assert_true(mp_mono_ms() - t0 >= 20);
    close(fds[0]);
    close(fds[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_fiber_waits_for_its_descriptor_and_the_thread_goes_on),
        cmocka_unit_test(test_a_wait_ends_at_its_deadline_and_a_late_event_wakes_nobody),
        cmocka_unit_test(test_a_fiber_parked_is_woken_from_another_thread),
        cmocka_unit_test(test_a_wake_before_the_park_is_kept),
        cmocka_unit_test(test_a_park_ends_at_its_deadline_unwoken),
        cmocka_unit_test(test_error_text_and_deadline_belong_to_each_fiber),
        cmocka_unit_test(test_the_limit_holds_and_finished_fibers_are_reused),
        cmocka_unit_test(test_a_sleeping_fiber_lets_the_others_of_its_thread_run),
        cmocka_unit_test(test_outside_a_fiber_waits_block_as_before),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
