/*
 * pattern.h: OpenAPI `pattern` keywords (ECMA-262 regular expressions) as
 * POSIX extended regular expressions, compiled once with regcomp().
 *
 * The common ECMA vocabulary is translated: \d \w \s and their negations
 * (also inside [...]), \n \t \r, escaped punctuation, (?:...) as a plain
 * group, and lazy quantifiers (`*?`), which match the same strings when only
 * "does it match" is asked. What POSIX cannot express (lookaround, \u
 * escapes, backreferences to named groups, flags) is refused with a reason,
 * so a spec never silently means something else than it says. Matching is on
 * bytes (the C locale): `.` is one byte, not one code point.
 *
 * Leaf module: libc only. Compiled patterns are immutable; regexec() on them
 * is thread-safe.
 */
#ifndef MP_GW_PATTERN_H
#define MP_GW_PATTERN_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

/** Translates the ECMA pattern `ecma` into POSIX ERE text in `out` (`size` bytes). Returns false with a reason in
 *  `why` when the pattern uses something POSIX cannot express or `out` is too small. */
bool gw_pattern_translate(char *out, size_t size, const char *ecma, char *why, size_t why_size);

/** Translates and compiles `ecma` into `re` (REG_EXTENDED | REG_NOSUB). Returns false with a reason in `why`. On
 *  success the caller owns `re`; free it with regfree(). */
bool gw_pattern_compile(regex_t *re, const char *ecma, char *why, size_t why_size);

#endif
