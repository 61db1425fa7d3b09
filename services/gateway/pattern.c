/*
 * pattern.c: ECMA-262 patterns as POSIX EREs (see pattern.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include "pattern.h"

typedef struct out {
    char *p;
    size_t len, size;
    bool overflow;
} out_t;

static void out_str(out_t *o, const char *s)
{
    size_t n = strlen(s);
    if (o->len + n + 1 > o->size) {
        o->overflow = true;
        return;
    }
    memcpy(o->p + o->len, s, n + 1);
    o->len += n;
}

static void out_char(out_t *o, char c)
{
    char s[2] = {c, '\0'};
    out_str(o, s);
}

static bool pattern_fail(char *why, size_t why_size, const char *msg, size_t at)
{
    snprintf(why, why_size, "%s (at offset %zu)", msg, at);
    return false;
}

/* control escapes ECMA has and ERE lacks: the byte itself */
static int control_escape(char c)
{
    switch (c) {
    case 'n':
        return '\n';
    case 't':
        return '\t';
    case 'r':
        return '\r';
    case 'f':
        return '\f';
    case 'v':
        return '\v';
    default:
        return -1;
    }
}

/* One bracket expression starting at `s[*i] == '['`; advances *i past its ']'. */
static bool bracket(out_t *o, const char *s, size_t *i, char *why, size_t why_size)
{
    size_t at = *i;
    bool neg = false, close = false, dash = false, caret = false;
    char body[512];
    out_t b = {body, 0, sizeof(body), false};
    body[0] = '\0';

    (*i)++;
    if (s[*i] == '^') {
        neg = true;
        (*i)++;
    }
    if (s[*i] == ']')
        return pattern_fail(why, why_size, "empty character classes ([] and [^]) are not supported", at);
    while (s[*i] != ']') {
        char c = s[*i];
        int lit = -1; /* a literal byte, or -1 when a class was emitted */
        if (c == '\0')
            return pattern_fail(why, why_size, "unterminated character class", at);
        if (c == '\\') {
            char e = s[++*i];
            if (e == 'd')
                out_str(&b, "0-9");
            else if (e == 'w')
                out_str(&b, "A-Za-z0-9_");
            else if (e == 's')
                out_str(&b, "[:space:]");
            else if (e == 'D' || e == 'W' || e == 'S')
                return pattern_fail(why, why_size, "negated class escapes inside [...] are not supported", *i);
            else if (control_escape(e) >= 0)
                lit = control_escape(e);
            else if (e != '\0' && ispunct((unsigned char)e))
                lit = e;
            else
                return pattern_fail(why, why_size, "unsupported escape inside [...]", *i);
        } else {
            lit = (unsigned char)c;
        }
        (*i)++;
        if (lit < 0)
            continue;
        /* a range a-z: both ends plain literals */
        if (s[*i] == '-' && s[*i + 1] != ']' && s[*i + 1] != '\0') {
            char hi = s[*i + 1];
            if (hi == '\\' || hi == '[' || lit == ']' || lit == '-' || lit == '^' || lit == '[')
                return pattern_fail(why, why_size, "character ranges must be between plain characters", *i);
            char r[4] = {(char)lit, '-', hi, '\0'};
            out_str(&b, r);
            *i += 2;
            continue;
        }
        if (lit == ']')
            close = true;
        else if (lit == '-')
            dash = true;
        else if (lit == '^')
            caret = true;
        else if (lit == '[' && strchr(":.=", s[*i]))
            return pattern_fail(why, why_size, "\"[:\", \"[.\" and \"[=\" inside [...] are not supported", *i);
        else
            out_char(&b, (char)lit);
    }
    (*i)++;
    if (b.overflow)
        return pattern_fail(why, why_size, "character class too long", at);
    /* POSIX places a literal ] first, ^ anywhere but first, - last */
    out_str(o, neg ? "[^" : "[");
    if (close)
        out_str(o, "]");
    out_str(o, body);
    if (caret)
        out_str(o, "^");
    if (dash)
        out_str(o, "-");
    out_str(o, "]");
    if (!close && !caret && !dash && body[0] == '\0')
        return pattern_fail(why, why_size, "empty character class", at);
    return true;
}

bool gw_pattern_translate(char *dst, size_t size, const char *s, char *why, size_t why_size)
{
    out_t o = {dst, 0, size, false};
    bool after_quant = false;
    if (size)
        dst[0] = '\0';
    for (size_t i = 0; s[i];) {
        char c = s[i];
        bool quant = false;
        if (c == '\\') {
            char e = s[i + 1];
            if (e == 'd')
                out_str(&o, "[0-9]");
            else if (e == 'D')
                out_str(&o, "[^0-9]");
            else if (e == 'w')
                out_str(&o, "[A-Za-z0-9_]");
            else if (e == 'W')
                out_str(&o, "[^A-Za-z0-9_]");
            else if (e == 's')
                out_str(&o, "[[:space:]]");
            else if (e == 'S')
                out_str(&o, "[^[:space:]]");
            else if (e == 'b' || e == 'B')
                out_str(&o, e == 'b' ? "\\b" : "\\B");
            else if (control_escape(e) >= 0)
                out_char(&o, (char)control_escape(e));
            else if (e != '\0' && ispunct((unsigned char)e)) {
                if (strchr(".[]{}()*+?^$|\\", e))
                    out_char(&o, '\\');
                out_char(&o, e);
            } else if (e >= '0' && e <= '9')
                return pattern_fail(why, why_size, "backreferences are not supported", i);
            else
                return pattern_fail(why, why_size, "unsupported escape (\\u, \\x, \\p, \\c and \\k are not supported)",
                                    i);
            i += 2;
        } else if (c == '[') {
            if (!bracket(&o, s, &i, why, why_size))
                return false;
        } else if (c == '(' && s[i + 1] == '?') {
            if (s[i + 2] != ':')
                return pattern_fail(why, why_size, "lookahead, lookbehind and named groups are not supported", i);
            out_char(&o, '(');
            i += 3;
        } else if (c == '?' && after_quant) {
            i++; /* lazy quantifier: matches the same strings */
            after_quant = false;
            continue;
        } else {
            quant = c == '*' || c == '+' || c == '?' || c == '}';
            out_char(&o, c);
            i++;
        }
        after_quant = quant;
    }
    if (o.overflow)
        return pattern_fail(why, why_size, "pattern too long", 0);
    return true;
}

bool gw_pattern_compile(regex_t *re, const char *ecma, char *why, size_t why_size)
{
    char ere[2048];
    if (!gw_pattern_translate(ere, sizeof(ere), ecma, why, why_size))
        return false;
    int rc = regcomp(re, ere, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[200];
        regerror(rc, re, msg, sizeof(msg));
        snprintf(why, why_size, "not a valid regular expression: %s", msg);
        return false;
    }
    return true;
}
