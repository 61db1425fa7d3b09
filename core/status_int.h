/*
 * status_int.h: the error detail buffer's switch, for core/fiber.c only.
 */
#ifndef MP_STATUS_INT_H
#define MP_STATUS_INT_H

#define MP_ERR_MAX 4096

/** Makes mp_err_set()/mp_err_get() on this thread use `buf` (MP_ERR_MAX bytes), or the thread's own when NULL. */
void mp_err__use(char *buf);

#endif
