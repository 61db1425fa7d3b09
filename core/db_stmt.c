/*
 * db_stmt.c: the prepared statements one Postgres connection holds.
 *
 * Statements are named after a hash of their text ("mp_<16 hex>"), so the
 * same SQL gets the same name on every connection and a handler never
 * names anything: mp_db_exec() prepares a text the first time a connection
 * sees it and executes it by name from then on. The set lives and dies
 * with the connection (a new connection starts empty, which is how a
 * Postgres restart is survived). It is bounded: past MP_DB_MAX_STMTS, or on
 * the rare hash collision, a text is run unnamed as before, so SQL built
 * at run time cannot grow a connection's memory without limit.
 *
 * One owner thread at a time (the connection's), like the PGconn.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mp/alloc.h"
#include "mp/hash.h"
#include "db_int.h"

mp_db_stmt_kind_t mp_db__stmt_find(mp_db_stmts_t *s, const char *sql, char name[MP_DB_STMT_NAME])
{
    uint64_t key = mp_fnv1a_str(sql) | 1; /* the map's keys must not be 0 */
    const char *known = mp_u64map_get(&s->map, key);
    snprintf(name, MP_DB_STMT_NAME, "mp_%016llx", (unsigned long long)key);
    if (known)
        return strcmp(known, sql) == 0 ? MP_DB_STMT_READY : MP_DB_STMT_UNNAMED;
    return s->map.len < MP_DB_MAX_STMTS ? MP_DB_STMT_NEW : MP_DB_STMT_UNNAMED;
}

void mp_db__stmt_add(mp_db_stmts_t *s, const char *sql)
{
    mp_u64map_put(&s->map, mp_fnv1a_str(sql) | 1, mp_xstrdup(sql));
}

void mp_db__stmt_clear(mp_db_stmts_t *s)
{
    for (size_t i = 0; i < s->map.cap; i++)
        if (s->map.keys[i])
            free(s->map.vals[i]);
    mp_u64map_dispose(&s->map);
    s->map = (mp_u64map_t)MP_U64MAP_INIT;
}
