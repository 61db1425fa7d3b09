/*
 * mp/cfg.h: moonport's configuration: one YAML file (config/moonport.yaml),
 * each key overridable by an environment variable, secrets from files.
 *
 * Keys are dotted paths ("http.listen"). For a key `a.b_c` the environment
 * variable MOONPORT_A_B_C wins over the file. Getters take a default and
 * bounds; a bad value does not stop the getter (it returns the default) but
 * records an error with `file:line`, and mp_cfg_check() reports every error
 * at once, plus every key in the file that no getter read ("unknown key"),
 * so a typo stops start-up instead of being silently ignored.
 *
 * Secrets (mp_cfg_secret) are never literal in the file: they come from the
 * variable MOONPORT_<KEY>, a file named by MOONPORT_<KEY>_FILE, or a file
 * named by the key `<key>_file`.
 *
 * Not thread-safe: read the configuration at start-up, on one thread, into
 * plain structs.
 */
#ifndef MP_CFG_H
#define MP_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mp/status.h"
#include "mp/yaml.h"

typedef struct mp_cfg mp_cfg_t;

/** Loads `path` (NULL: no file, defaults and environment only). Errors: MP_EIO, MP_EINVAL with "file:line: ..." in
 *  mp_err_get(). Caller owns `*out`; free with mp_cfg_destroy(). */
mp_status_t mp_cfg_load(mp_cfg_t **out, const char *path);
/** Like mp_cfg_load() from text in memory; `name` is used in messages. */
mp_status_t mp_cfg_parse(mp_cfg_t **out, const char *name, const char *text);
/** Frees the configuration and every string a getter returned. Accepts NULL. */
void mp_cfg_destroy(mp_cfg_t *cfg);
/** The file name used in messages. Borrowed. */
const char *mp_cfg_file(const mp_cfg_t *cfg);

/** A string; NULL default allowed. Borrowed; valid until mp_cfg_destroy(). */
const char *mp_cfg_str(mp_cfg_t *cfg, const char *key, const char *def);
/** An integer within [min, max]. */
int64_t mp_cfg_int(mp_cfg_t *cfg, const char *key, int64_t def, int64_t min, int64_t max);
/** A boolean (true/false, yes/no, on/off, 1/0). */
bool mp_cfg_bool(mp_cfg_t *cfg, const char *key, bool def);
/** A number. */
double mp_cfg_double(mp_cfg_t *cfg, const char *key, double def, double min, double max);
/** A duration in milliseconds: an integer with a unit ms, s, m, h or d ("250ms", "3s"); a bare integer is ms. */
int64_t mp_cfg_duration_ms(mp_cfg_t *cfg, const char *key, int64_t def_ms, int64_t min_ms, int64_t max_ms);
/** A size in bytes: an integer with an optional unit k/KiB, m/MiB, g/GiB (powers of 1024) or B. */
int64_t mp_cfg_size(mp_cfg_t *cfg, const char *key, int64_t def, int64_t min, int64_t max);
/** One of `choices` (NULL-terminated); returns its index, or the index of `def` on error. */
int mp_cfg_enum(mp_cfg_t *cfg, const char *key, const char *def, const char *const *choices);
/** A list of strings (a YAML list, or a comma-separated string, also from the environment). Returns the count and
 *  sets `*items` (borrowed; valid until mp_cfg_destroy()). Missing: `def` split on commas (may be NULL). */
size_t mp_cfg_strv(mp_cfg_t *cfg, const char *key, const char *def, const char *const **items);
/** A secret (see above), or NULL when none is configured. Caller owns the result; wipe and free it with
 *  mp_cfg_secret_free(). A trailing newline in a file is dropped. An unreadable file is an error. */
char *mp_cfg_secret(mp_cfg_t *cfg, const char *key);
/** Overwrites a secret with zeros and frees it. Accepts NULL. */
void mp_cfg_secret_free(char *secret);
/** The raw YAML subtree at `key` (NULL when absent), marked as read; the caller validates it and reports problems
 *  with mp_cfg_error_at(). Borrowed. */
mp_yaml_node_t *mp_cfg_node(mp_cfg_t *cfg, const char *key);
/** Marks a key as known even when no getter reads it in this process (a section owned by a role not running). */
void mp_cfg_accept(mp_cfg_t *cfg, const char *key);

/** Records an error at `node`'s line (or the file as a whole when `node` is NULL). */
void mp_cfg_error_at(mp_cfg_t *cfg, const mp_yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Reports every recorded error and unknown key. Returns MP_OK, or MP_EINVAL with all the messages (one per line)
 *  in mp_err_get(). */
mp_status_t mp_cfg_check(mp_cfg_t *cfg);

/** The environment variable name for `key` ("http.listen" -> "MOONPORT_HTTP_LISTEN") into `buf`. */
void mp_cfg_env_name(char *buf, size_t size, const char *key);

#endif
