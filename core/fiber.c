/*
 * fiber.c: the fiber scheduler (see mp/fiber.h).
 *
 * Context switches are ucontext's; each fiber's stack is an mmap'd region
 * with a PROT_NONE guard page below it, so an overflow faults instead of
 * corrupting a neighbour. A fiber's function loops: when the work it was
 * given returns, the fiber goes back to the free list with its context
 * intact and the next spawn reuses it without makecontext.
 *
 * Waiting: a fiber waiting on a descriptor arms it in the scheduler's epoll
 * with EPOLLONESHOT (re-armed with one MOD, the ADD only the first time the
 * descriptor is seen), so a ready descriptor wakes exactly its waiter and is
 * disarmed by the kernel. Deadlines are found by a scan of the waiting
 * fibers: there are at most a few hundred, and a heap would cost more on the
 * common path (the reply arrives in time) than the scan does on the rare one.
 * Wakes from other threads go through a list under `mu` and an eventfd.
 *
 * Under AddressSanitizer every switch is announced to it
 * (__sanitizer_start/finish_switch_fiber), or it takes the fiber stacks for
 * corruption of the thread's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include "mp/alloc.h"
#include "mp/fiber.h"
#include "mp/log.h"
#include "status_int.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define MP_ASAN_FIBERS 1
#endif

typedef enum { F_FREE, F_READY, F_RUNNING, F_WAIT_FD, F_PARKED } fstate_t;

struct mp_fiber {
    mp_sched_t *s;
    ucontext_t ctx;
    void *stack; /* the mapping, guard page first */
    size_t stack_len;
    fstate_t state;
    void (*fn)(void *);
    void *arg;
    int64_t at_ms;         /* deadline of the current wait, 0: none */
    int wait_fd;           /* descriptor of an F_WAIT_FD wait */
    int wait_result;       /* 1 ready, 0 deadline */
    bool parked;           /* parked and not yet claimed by a wake or its deadline; under s->mu */
    bool permit;           /* a wake that arrived while not parked; under s->mu */
    bool woken;            /* why the last park ended */
    int64_t deadline;      /* the request deadline of the work on this fiber */
    char err[MP_ERR_MAX];  /* mp_err_get()'s text while this fiber runs */
    struct mp_fiber *next; /* free list, ready queue or remote-wake list */
#ifdef MP_ASAN_FIBERS
    void *fake_stack;
#endif
};

struct mp_sched {
    int epfd, efd;
    int max, alive;
    size_t stack_len;
    mp_fiber_t **all; /* every fiber made, for the deadline scan */
    int nall;
    mp_fiber_t *free_list;
    mp_fiber_t *ready_head, *ready_tail;
    ucontext_t main_ctx;
    mp_fiber_t *current;
    pthread_mutex_t mu;
    mp_fiber_t *remote; /* woken from other threads; under mu */
    int *armed;         /* descriptors already ADDed to epfd (an fd-indexed bitmap would do; fds are small) */
    size_t narmed_cap;
#ifdef MP_ASAN_FIBERS
    const void *thread_stack_bottom;
    size_t thread_stack_size;
    void *main_fake_stack;
#endif
};

#ifdef MP_ASAN_FIBERS
#define DEFAULT_STACK_KIB 4096
#else
#define DEFAULT_STACK_KIB 512
#endif

static __thread mp_sched_t *tl_sched;
static __thread int64_t tl_thread_deadline;

int64_t mp_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- switching ------------------------------------------------------------------------- */

static void switch_to_fiber(mp_sched_t *s, mp_fiber_t *f)
{
    s->current = f;
    f->state = F_RUNNING;
    mp_err__use(f->err);
#ifdef MP_ASAN_FIBERS
    __sanitizer_start_switch_fiber(&s->main_fake_stack, (char *)f->stack + getpagesize(),
                                   f->stack_len - (size_t)getpagesize());
#endif
    swapcontext(&s->main_ctx, &f->ctx);
#ifdef MP_ASAN_FIBERS
    __sanitizer_finish_switch_fiber(s->main_fake_stack, NULL, NULL);
#endif
    mp_err__use(NULL);
    s->current = NULL;
}

/* From the running fiber back to its scheduler; returns when the fiber is resumed. */
static void switch_to_sched(mp_fiber_t *f)
{
    mp_sched_t *s = f->s;
#ifdef MP_ASAN_FIBERS
    __sanitizer_start_switch_fiber(&f->fake_stack, s->thread_stack_bottom, s->thread_stack_size);
#endif
    swapcontext(&f->ctx, &s->main_ctx);
#ifdef MP_ASAN_FIBERS
    __sanitizer_finish_switch_fiber(f->fake_stack, &s->thread_stack_bottom, &s->thread_stack_size);
#endif
}

static void fiber_main(void)
{
    mp_fiber_t *f = tl_sched->current;
#ifdef MP_ASAN_FIBERS
    __sanitizer_finish_switch_fiber(NULL, &f->s->thread_stack_bottom, &f->s->thread_stack_size);
#endif
    for (;;) {
        f->fn(f->arg);
        f->fn = NULL;
        f->arg = NULL;
        f->state = F_FREE;
        f->next = f->s->free_list;
        f->s->free_list = f;
        f->s->alive--;
        switch_to_sched(f);
    }
}

static mp_fiber_t *fiber_new(mp_sched_t *s)
{
    size_t page = (size_t)getpagesize();
    void *mem =
        mmap(NULL, s->stack_len + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED)
        return NULL;
    mprotect(mem, page, PROT_NONE); /* the guard: stacks grow down into it */
    mp_fiber_t *f = mp_xcalloc(1, sizeof(*f));
    f->s = s;
    f->stack = mem;
    f->stack_len = s->stack_len + page;
    f->wait_fd = -1;
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = (char *)mem + page;
    f->ctx.uc_stack.ss_size = s->stack_len;
    f->ctx.uc_link = NULL; /* fiber_main never returns */
    makecontext(&f->ctx, fiber_main, 0);
    s->all = mp_xrealloc(s->all, (size_t)(s->nall + 1) * sizeof(*s->all));
    s->all[s->nall++] = f;
    return f;
}

/* ---- the scheduler ----------------------------------------------------------------------- */

mp_status_t mp_sched_create(mp_sched_t **out, int max_fibers, int stack_kib)
{
    mp_sched_t *s = mp_xcalloc(1, sizeof(*s));
    s->max = max_fibers > 0 ? max_fibers : 64;
    s->stack_len = (size_t)(stack_kib > 0 ? stack_kib : DEFAULT_STACK_KIB) * 1024;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}; /* NULL: the eventfd */
    if (s->epfd < 0 || s->efd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->efd, &ev) != 0) {
        int e = errno;
        mp_sched_destroy(s);
        return mp_err_set(MP_EINTERNAL, "fiber: cannot set up epoll: %s", strerror(e));
    }
    pthread_mutex_init(&s->mu, NULL);
#ifdef MP_ASAN_FIBERS
    pthread_attr_t a;
    void *bottom = NULL;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstack(&a, &bottom, &s->thread_stack_size);
        pthread_attr_destroy(&a);
    }
    s->thread_stack_bottom = bottom;
#endif
    tl_sched = s;
    *out = s;
    return MP_OK;
}

void mp_sched_destroy(mp_sched_t *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->nall; i++) {
        munmap(s->all[i]->stack, s->all[i]->stack_len);
        free(s->all[i]);
    }
    free(s->all);
    free(s->armed);
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->efd >= 0)
        close(s->efd);
    pthread_mutex_destroy(&s->mu);
    if (tl_sched == s)
        tl_sched = NULL;
    free(s);
}

static void make_ready(mp_sched_t *s, mp_fiber_t *f)
{
    f->state = F_READY;
    f->next = NULL;
    if (s->ready_tail)
        s->ready_tail->next = f;
    else
        s->ready_head = f;
    s->ready_tail = f;
}

static void run_ready(mp_sched_t *s)
{
    mp_fiber_t *f;
    while ((f = s->ready_head) != NULL) {
        s->ready_head = f->next;
        if (s->ready_head == NULL)
            s->ready_tail = NULL;
        switch_to_fiber(s, f);
    }
}

bool mp_sched_spawn(mp_sched_t *s, void (*fn)(void *arg), void *arg)
{
    if (s->alive >= s->max)
        return false;
    mp_fiber_t *f = s->free_list;
    if (f)
        s->free_list = f->next;
    else if ((f = fiber_new(s)) == NULL)
        return false;
    f->fn = fn;
    f->arg = arg;
    f->deadline = 0;
    f->err[0] = '\0';
    pthread_mutex_lock(&s->mu);
    f->permit = f->parked = false; /* a late wake meant for the fiber's previous work */
    pthread_mutex_unlock(&s->mu);
    s->alive++;
    switch_to_fiber(s, f);
    run_ready(s); /* whatever it woke on this thread */
    return true;
}

int mp_sched_alive(const mp_sched_t *s)
{
    return s->alive;
}

void mp_sched_kick(mp_sched_t *s)
{
    uint64_t one = 1;
    ssize_t n = write(s->efd, &one, sizeof(one));
    (void)n; /* EAGAIN: the counter is already non-zero, which is all a kick needs */
}

/* The wait until the earliest deadline among waiting fibers, capped by `timeout_ms`. */
static int next_timeout(mp_sched_t *s, int timeout_ms, int64_t now)
{
    int64_t best = timeout_ms < 0 ? -1 : timeout_ms;
    for (int i = 0; i < s->nall; i++) {
        mp_fiber_t *f = s->all[i];
        if ((f->state == F_WAIT_FD || f->state == F_PARKED) && f->at_ms) {
            int64_t left = f->at_ms > now ? f->at_ms - now : 0;
            if (best < 0 || left < best)
                best = left;
        }
    }
    return (int)best;
}

int mp_sched_fd(const mp_sched_t *s)
{
    return s->epfd;
}

int mp_sched_timeout(mp_sched_t *s)
{
    return s->ready_head ? 0 : next_timeout(s, -1, mp_mono_ms());
}

static void take_remote(mp_sched_t *s)
{
    uint64_t n;
    while (read(s->efd, &n, sizeof(n)) > 0)
        ;
    pthread_mutex_lock(&s->mu);
    mp_fiber_t *f = s->remote;
    s->remote = NULL;
    pthread_mutex_unlock(&s->mu);
    while (f) {
        mp_fiber_t *next = f->next;
        f->woken = true;
        make_ready(s, f);
        f = next;
    }
}

static void expire(mp_sched_t *s, int64_t now)
{
    for (int i = 0; i < s->nall; i++) {
        mp_fiber_t *f = s->all[i];
        if (f->at_ms == 0 || f->at_ms > now)
            continue;
        if (f->state == F_WAIT_FD) {
            /* still armed: disarm, or a late event would wake whatever this fiber waits on next */
            struct epoll_event ev = {0};
            epoll_ctl(s->epfd, EPOLL_CTL_MOD, f->wait_fd, &ev);
            f->wait_result = 0;
            make_ready(s, f);
        } else if (f->state == F_PARKED) {
            pthread_mutex_lock(&s->mu);
            bool mine = f->parked; /* else a wake from another thread has queued it already */
            f->parked = false;
            pthread_mutex_unlock(&s->mu);
            if (mine) {
                f->woken = false;
                make_ready(s, f);
            }
        }
    }
}

void mp_sched_run(mp_sched_t *s, int timeout_ms)
{
    struct epoll_event evs[64];
    int64_t now = mp_mono_ms();
    int wait = s->ready_head ? 0 : next_timeout(s, timeout_ms, now);
    int n = epoll_wait(s->epfd, evs, 64, wait);
    for (int i = 0; i < n; i++) {
        mp_fiber_t *f = evs[i].data.ptr;
        if (f == NULL) {
            take_remote(s);
        } else if (f->state == F_WAIT_FD) {
            f->wait_result = 1;
            make_ready(s, f);
        }
    }
    expire(s, mp_mono_ms());
    run_ready(s);
}

/* ---- waiting ------------------------------------------------------------------------------ */

mp_fiber_t *mp_fiber_current(void)
{
    return tl_sched ? tl_sched->current : NULL;
}

static bool seen_fd(mp_sched_t *s, int fd)
{
    if ((size_t)fd >= s->narmed_cap) {
        size_t cap = s->narmed_cap ? s->narmed_cap : 64;
        while (cap <= (size_t)fd)
            cap *= 2;
        s->armed = mp_xrealloc(s->armed, cap * sizeof(*s->armed));
        memset(s->armed + s->narmed_cap, 0, (cap - s->narmed_cap) * sizeof(*s->armed));
        s->narmed_cap = cap;
    }
    return s->armed[fd] != 0;
}

/* Arms `fd` for one event delivered to `f`. A descriptor closed since it was added left the epoll set by itself
 * (ENOENT on MOD), and a new one under the same number is added afresh. */
static bool arm(mp_sched_t *s, mp_fiber_t *f, int fd, short events)
{
    struct epoll_event ev = {
        .events = EPOLLONESHOT | (events & POLLIN ? EPOLLIN : 0) | (events & POLLOUT ? EPOLLOUT : 0), .data.ptr = f};
    if (seen_fd(s, fd) && epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
        return true;
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ||
        (errno == EEXIST && epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)) {
        s->armed[fd] = 1;
        return true;
    }
    return false;
}

static int poll_fd(int fd, short events, int64_t at_ms)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int64_t left = at_ms ? at_ms - mp_mono_ms() : -1;
        int n = poll(&p, 1, at_ms == 0 ? -1 : left > 0 ? (int)left : 0);
        if (n >= 0)
            return n > 0 ? 1 : 0;
        if (errno != EINTR)
            return -1;
    }
}

int mp_fiber_wait_fd(int fd, short events, int64_t at_ms)
{
    mp_fiber_t *f = mp_fiber_current();
    if (f == NULL || fd < 0)
        return poll_fd(fd, events, at_ms);
    if (!arm(f->s, f, fd, events))
        return poll_fd(fd, events, at_ms); /* a descriptor epoll refuses (a regular file): block as before */
    f->state = F_WAIT_FD;
    f->wait_fd = fd;
    f->at_ms = at_ms;
    switch_to_sched(f);
    f->at_ms = 0;
    f->wait_fd = -1;
    return f->wait_result;
}

bool mp_fiber_park(int64_t at_ms)
{
    mp_fiber_t *f = mp_fiber_current();
    if (f == NULL)
        return false;
    mp_sched_t *s = f->s;
    pthread_mutex_lock(&s->mu);
    if (f->permit) {
        f->permit = false;
        pthread_mutex_unlock(&s->mu);
        return true;
    }
    f->parked = true;
    pthread_mutex_unlock(&s->mu);
    f->state = F_PARKED; /* the owner thread's own field: other threads go by `parked` */
    f->at_ms = at_ms;
    switch_to_sched(f);
    f->at_ms = 0;
    return f->woken;
}

void mp_fiber_sleep(int ms)
{
    int64_t until = mp_mono_ms() + ms;
    if (mp_fiber_current() == NULL) {
        usleep((useconds_t)ms * 1000);
        return;
    }
    while (mp_mono_ms() < until)
        mp_fiber_park(until); /* a wake left over from an earlier wait ends a park early: park again */
}

void mp_fiber_wake(mp_fiber_t *f)
{
    mp_sched_t *s = f->s;
    pthread_mutex_lock(&s->mu);
    if (!f->parked) {
        f->permit = true;
        pthread_mutex_unlock(&s->mu);
        return;
    }
    f->parked = false; /* claimed: expire() leaves it alone now */
    if (tl_sched == s) {
        pthread_mutex_unlock(&s->mu);
        f->woken = true;
        make_ready(s, f);
        return;
    }
    f->next = s->remote;
    s->remote = f;
    pthread_mutex_unlock(&s->mu);
    mp_sched_kick(s);
}

int64_t *mp_fiber_deadline(void)
{
    mp_fiber_t *f = mp_fiber_current();
    return f ? &f->deadline : &tl_thread_deadline;
}
