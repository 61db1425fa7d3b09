/*
 * mp/embed.h: files compiled into the binary by cmake/embed.cmake
 * (service descriptors, migrations, the Lua prelude). Tables end with a row
 * whose name is NULL. Static storage; any thread.
 */
#ifndef MP_EMBED_H
#define MP_EMBED_H

#include <stddef.h>

typedef struct mp_embed_file {
    const char *name; /* file name without directory, e.g. "0001_init.sql" */
    const char *data; /* NUL-terminated contents */
    size_t len;       /* length without the terminating NUL */
} mp_embed_file_t;

#endif
