/*
 * rules.h: the User service's pure checks on profile fields: BCP 47 locale
 * tags, IANA time-zone names and the depth of a JSON value.
 * No I/O except user_timezone_valid(), which looks at the zoneinfo
 * directory. Any thread; no state.
 */
#ifndef MP_USER_RULES_H
#define MP_USER_RULES_H

#include <stdbool.h>
#include <jansson.h>

#define USER_ZONEINFO_DIR "/usr/share/zoneinfo"

/** True when `tag` is a well-formed BCP 47 language tag of the usual shape (RFC 5646 "langtag" without extensions
 *  and private use): language (2-3 letters) [-script (4 letters)] [-region (2
 *  letters or 3 digits)] *(-variant (5-8 alphanumerics, or a digit and 3 alphanumerics)); at most 35 characters. */
bool user_locale_valid(const char *tag);

/** True when `name` names an IANA time zone ("Europe/Berlin", "UTC", "Etc/GMT+5"): only [A-Za-z0-9/_+-], no empty,
 *  "." or ".." component, at most 64 characters, and `dir`/<name> is a regular file starting with the TZif magic.
 *  When `dir` itself does not exist, a built-in list of common zones is used instead. */
bool user_timezone_valid(const char *dir, const char *name);

/** Nesting depth of `v`: 0 for a scalar, 1 + the deepest member for an array or object. Borrowed. */
int user_json_depth(const json_t *v);

#endif
