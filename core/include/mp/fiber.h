/*
 * mp/fiber.h: fibers on a per-thread scheduler, so a handler that waits on
 * Postgres gives its thread to the next request instead of parking it.
 *
 * A scheduler belongs to one thread and runs many fibers on it, each on its
 * own small stack. Code that may wait asks through mp_fiber_wait_fd() or
 * mp_fiber_park() (or sleeps, mp_fiber_sleep()): on a fiber these switch to
 * the next ready fiber and the
 * scheduler's epoll wakes the waiter; on a plain thread they simply block
 * (poll(), a condition variable), so the same code serves both. Handlers
 * keep reading top to bottom; what changes is only who waits.
 *
 * Anything a fiber does that blocks its thread without asking here
 * (hiredis, a nats.c request, CPU-heavy work) holds up the other fibers of
 * that thread until it returns: correct, only less concurrent. Never hold a
 * mutex across a wait: another fiber of the same thread may want it.
 *
 * Per-fiber state switched with the fiber: mp_err_get()'s detail text and
 * the request deadline (mp_fiber_deadline()).
 */
#ifndef MP_FIBER_H
#define MP_FIBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mp/status.h"

typedef struct mp_sched mp_sched_t;
typedef struct mp_fiber mp_fiber_t;

/** Creates a scheduler for the calling thread, for at most `max_fibers` live fibers with `stack_kib` KiB stacks
 *  (default 512, 4 MiB under AddressSanitizer, whose redzones make frames several times larger; only the pages a
 *  fiber touches are ever committed). Free with mp_sched_destroy(). */
mp_status_t mp_sched_create(mp_sched_t **out, int max_fibers, int stack_kib);
/** Frees the scheduler; no fiber may be alive. Accepts NULL. Its thread only. */
void mp_sched_destroy(mp_sched_t *s);

/** Starts fn(arg) on a fiber and runs it until its first wait. False when `max_fibers` are alive. Its thread only. */
bool mp_sched_spawn(mp_sched_t *s, void (*fn)(void *arg), void *arg);
/** Fibers alive (running, ready or waiting). */
int mp_sched_alive(const mp_sched_t *s);
/** One round: waits up to `timeout_ms` (-1: no limit) for a descriptor, a deadline or a wake-up (returning at
 *  once when a fiber is ready), then runs every fiber that became ready. Its thread only. */
void mp_sched_run(mp_sched_t *s, int timeout_ms);
/** The scheduler's descriptor (an epoll set): readable when mp_sched_run() has something to do, so a scheduler can
 *  run inside another event loop (libuv). With mp_sched_timeout(): milliseconds until the earliest deadline of a
 *  waiting fiber (0: one is ready now; -1: none). */
int mp_sched_fd(const mp_sched_t *s);
int mp_sched_timeout(mp_sched_t *s);
/** Makes the scheduler's current or next mp_sched_run() return early. Any thread. */
void mp_sched_kick(mp_sched_t *s);

/** The fiber running now, or NULL on a plain thread. */
mp_fiber_t *mp_fiber_current(void);
/** Waits until `fd` has `events` (POLLIN / POLLOUT) or the monotonic clock reaches `at_ms` (mp_mono_ms(); 0: no
 *  limit). 1 when ready, 0 at the deadline, -1 on a poll error. A plain thread polls. One fiber at a time may wait
 *  on a descriptor (as one owner at a time uses a connection). */
int mp_fiber_wait_fd(int fd, short events, int64_t at_ms);
/** Parks the running fiber until mp_fiber_wake() or `at_ms` (0: no limit). A wake that came first is kept, so
 *  parking after it returns at once. True when woken. Fibers only. */
bool mp_fiber_park(int64_t at_ms);
/** Wakes `f` if it is parked, or lets its next park return at once. Any thread. */
void mp_fiber_wake(mp_fiber_t *f);
/** Waits `ms` milliseconds: on a fiber the thread runs the other fibers meanwhile (usleep() there would hold them
 *  all up, and with them whatever they hold, such as pool connections); on a plain thread it sleeps. */
void mp_fiber_sleep(int ms);
/** The request deadline (wall-clock ms since the epoch, 0: none) of the running fiber, or of the thread when not on
 *  a fiber. Writable: the service framework sets it around each handler. */
int64_t *mp_fiber_deadline(void);

/** Monotonic milliseconds, the clock of every `at_ms`. */
int64_t mp_mono_ms(void);

#endif
