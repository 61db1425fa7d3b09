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

/*
 * The direct matcher: most patterns in specs are one anchored run of
 * character classes (`^[a-z0-9][a-z0-9-]*$`, `^[A-Z]{2}-\d{3,6}$`,
 * `^https://`), which a single greedy pass over the bytes decides, with no
 * regexec() (which allocates and locks per call). gw_pattern_seq_compile()
 * takes a pattern of that shape only when the pass is exact for it: it
 * starts with `^`, has no groups or alternation, and no item of variable
 * length shares a byte with an item that may directly follow it. It reads
 * the pattern exactly as gw_pattern_translate() does (same classes, C
 * locale, `.` is any byte), so where it answers, it answers as the
 * compiled ERE would.
 */
typedef struct gw_pattern_seq gw_pattern_seq_t;

/** The direct matcher for `ecma` (a pattern gw_pattern_compile() accepted), or NULL when the pattern is not of the
 *  shape it decides exactly (use regexec()). Free with free(). */
gw_pattern_seq_t *gw_pattern_seq_compile(const char *ecma);
/** True when the NUL-terminated `s` matches, as regexec() of the translated pattern would say. Thread-safe. */
bool gw_pattern_seq_match(const gw_pattern_seq_t *q, const char *s);

#endif
