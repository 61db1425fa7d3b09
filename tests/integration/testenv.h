/*
 * testenv.h: what integration tests get from the harness
 * (tests/harness/run_tests.py): the URLs of the real servers it started.
 * A test run outside the harness fails loudly instead of skipping.
 */
#ifndef MP_TESTENV_H
#define MP_TESTENV_H

#include <stdio.h>
#include <stdlib.h>

static inline const char *mp_testenv(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') {
        fprintf(stderr, "%s is not set: run integration tests through `make test` (tests/harness/run_tests.py)\n",
                name);
        exit(2);
    }
    return v;
}

#define MP_TEST_NATS_URL() mp_testenv("MP_TEST_NATS_URL")
#define MP_TEST_PG_DSN() mp_testenv("MP_TEST_PG_DSN")
#define MP_TEST_REDIS_URL() mp_testenv("MP_TEST_REDIS_URL")

#endif
