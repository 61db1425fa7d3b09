/*
 * pattern.c: ECMA-262 patterns as POSIX EREs, and the direct matcher for
 * the common anchored shape (see pattern.h).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

enum { ELEM_CLASS = -1, ELEM_NEGATED_CLASS = -2, ELEM_BAD_ESCAPE = -3 };

/* One element of [...] at s[*i] (not ']' or NUL), *i advanced past it: a literal byte (returned), or ELEM_CLASS with
 * the class letter ('d', 'w', 's') in *cls, or ELEM_NEGATED_CLASS (\D \W \S) / ELEM_BAD_ESCAPE, both refused. */
static int bracket_elem(const char *s, size_t *i, char *cls)
{
    char c = s[*i];
    int lit = (unsigned char)c;
    if (c == '\\') {
        char e = s[++*i];
        if (e == 'd' || e == 'w' || e == 's') {
            *cls = e;
            lit = ELEM_CLASS;
        } else if (e == 'D' || e == 'W' || e == 'S') {
            return ELEM_NEGATED_CLASS;
        } else if (control_escape(e) >= 0) {
            lit = control_escape(e);
        } else if (e != '\0' && ispunct((unsigned char)e)) {
            lit = (unsigned char)e;
        } else {
            return ELEM_BAD_ESCAPE;
        }
    }
    (*i)++;
    return lit;
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
        char cls = 0;
        if (s[*i] == '\0')
            return pattern_fail(why, why_size, "unterminated character class", at);
        int lit = bracket_elem(s, i, &cls);
        if (lit == ELEM_NEGATED_CLASS)
            return pattern_fail(why, why_size, "negated class escapes inside [...] are not supported", *i);
        if (lit == ELEM_BAD_ESCAPE)
            return pattern_fail(why, why_size, "unsupported escape inside [...]", *i);
        if (lit == ELEM_CLASS) {
            out_str(&b, cls == 'd' ? "0-9" : cls == 'w' ? "A-Za-z0-9_" : "[:space:]");
            continue;
        }
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

/* ---- the direct matcher ----------------------------------------------------------------------------- */

#define SEQ_MAX_ITEMS 32
#define SEQ_MANY UINT32_MAX

typedef struct seq_item {
    uint8_t set[32]; /* bytes this item matches (never NUL) */
    uint32_t min, max;
} seq_item_t;

struct gw_pattern_seq {
    size_t n;
    bool anchored_end;
    seq_item_t items[SEQ_MAX_ITEMS];
};

static void set_add(uint8_t *set, unsigned c)
{
    if (c != 0)
        set[c >> 3] |= (uint8_t)(1u << (c & 7));
}

static bool set_has(const uint8_t *set, unsigned char c)
{
    return (set[c >> 3] >> (c & 7)) & 1;
}

static void set_range(uint8_t *set, unsigned lo, unsigned hi)
{
    for (unsigned c = lo; c <= hi; c++)
        set_add(set, c);
}

/* \d \w \s as the translation spells them ([0-9], [A-Za-z0-9_], [[:space:]] in the C locale); false for others */
static bool set_class(uint8_t *set, char e)
{
    if (e == 'd') {
        set_range(set, '0', '9');
    } else if (e == 'w') {
        set_range(set, '0', '9');
        set_range(set, 'A', 'Z');
        set_range(set, 'a', 'z');
        set_add(set, '_');
    } else if (e == 's') {
        set_range(set, '\t', '\r');
        set_add(set, ' ');
    } else {
        return false;
    }
    return true;
}

static void set_negate(uint8_t *set)
{
    for (size_t i = 0; i < 32; i++)
        set[i] = (uint8_t)~set[i];
    set[0] &= (uint8_t)~1u; /* never NUL: it ends the string */
}

/* One [...] at s[*i]; the same reading as bracket() above. False for anything it does not take. */
static bool seq_bracket(uint8_t *set, const char *s, size_t *i)
{
    bool neg = false;
    (*i)++;
    if (s[*i] == '^') {
        neg = true;
        (*i)++;
    }
    if (s[*i] == ']')
        return false;
    while (s[*i] != ']') {
        char cls = 0;
        if (s[*i] == '\0')
            return false;
        int lit = bracket_elem(s, i, &cls);
        if (lit == ELEM_CLASS) {
            set_class(set, cls);
            continue;
        }
        if (lit < 0)
            return false;
        if (s[*i] == '-' && s[*i + 1] != ']' && s[*i + 1] != '\0') {
            unsigned char hi = (unsigned char)s[*i + 1];
            if (hi == '\\' || hi == '[' || lit == ']' || lit == '-' || lit == '^' || lit == '[' || hi < lit)
                return false;
            set_range(set, (unsigned)lit, hi);
            *i += 2;
            continue;
        }
        if (lit == '[' && strchr(":.=", s[*i]))
            return false;
        set_add(set, (unsigned)lit);
    }
    (*i)++;
    if (neg)
        set_negate(set);
    return true;
}

static bool seq_number(const char *s, size_t *i, uint32_t *out)
{
    if (!isdigit((unsigned char)s[*i]))
        return false;
    unsigned long v = 0;
    while (isdigit((unsigned char)s[*i])) {
        v = v * 10 + (unsigned long)(s[(*i)++] - '0');
        if (v > 0x7fff) /* RE_DUP_MAX: regcomp refuses more anyway */
            return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* An optional quantifier at s[*i] (and a lazy '?' after it). False when it is malformed or doubled. */
static bool seq_quantifier(seq_item_t *it, const char *s, size_t *i)
{
    it->min = it->max = 1;
    char c = s[*i];
    if (c == '*' || c == '+' || c == '?') {
        it->min = c == '+' ? 1 : 0;
        it->max = c == '?' ? 1 : SEQ_MANY;
        (*i)++;
    } else if (c == '{') {
        (*i)++;
        if (!seq_number(s, i, &it->min))
            return false;
        it->max = it->min;
        if (s[*i] == ',') {
            (*i)++;
            it->max = SEQ_MANY;
            if (s[*i] != '}' && (!seq_number(s, i, &it->max) || it->max < it->min))
                return false;
        }
        if (s[(*i)++] != '}')
            return false;
    } else {
        return true;
    }
    if (s[*i] == '?')
        (*i)++; /* lazy: the same strings match */
    return s[*i] == '\0' || strchr("*+?{", s[*i]) == NULL;
}

/* A literal byte outside brackets that means itself in both dialects. */
static bool seq_plain(char c)
{
    return isalnum((unsigned char)c) || (c != '\0' && strchr(" !\"#%&',-/:;<=>@_`~", c));
}

static bool seq_disjoint(const seq_item_t *a, const seq_item_t *b)
{
    for (size_t k = 0; k < 32; k++)
        if (a->set[k] & b->set[k])
            return false;
    return true;
}

/* Greedy matching is exact when no item of variable length can hand a byte to whatever may come right after it. */
static bool seq_greedy_safe(const gw_pattern_seq_t *q)
{
    for (size_t i = 0; i < q->n; i++) {
        if (q->items[i].min == q->items[i].max)
            continue;
        for (size_t j = i + 1; j < q->n; j++) {
            if (!seq_disjoint(&q->items[i], &q->items[j]))
                return false;
            if (q->items[j].min > 0)
                break;
        }
    }
    return true;
}

gw_pattern_seq_t *gw_pattern_seq_compile(const char *s)
{
    gw_pattern_seq_t q;
    memset(&q, 0, sizeof(q));
    if (s[0] != '^')
        return NULL;
    for (size_t i = 1; s[i];) {
        if (s[i] == '$' && s[i + 1] == '\0') {
            q.anchored_end = true;
            break;
        }
        if (q.n == SEQ_MAX_ITEMS)
            return NULL;
        seq_item_t *it = &q.items[q.n++];
        char c = s[i];
        if (c == '\\') {
            char e = s[i + 1];
            if (set_class(it->set, (char)tolower((unsigned char)e))) {
                if (isupper((unsigned char)e))
                    set_negate(it->set);
            } else if (control_escape(e) >= 0) {
                set_add(it->set, (unsigned)control_escape(e));
            } else if (e != '\0' && ispunct((unsigned char)e)) {
                set_add(it->set, (unsigned char)e);
            } else {
                return NULL; /* \b, backreferences, \u ...: regexec decides */
            }
            i += 2;
        } else if (c == '[') {
            if (!seq_bracket(it->set, s, &i))
                return NULL;
        } else if (c == '.') {
            set_range(it->set, 1, 255);
            i++;
        } else if (seq_plain(c)) {
            set_add(it->set, (unsigned char)c);
            i++;
        } else {
            return NULL; /* groups, alternation, anchors inside, odd quantifiers */
        }
        if (!seq_quantifier(it, s, &i))
            return NULL;
    }
    if (!seq_greedy_safe(&q))
        return NULL;
    gw_pattern_seq_t *out = malloc(sizeof(*out));
    if (out)
        *out = q;
    return out;
}

bool gw_pattern_seq_match(const gw_pattern_seq_t *q, const char *s)
{
    size_t pos = 0;
    for (size_t i = 0; i < q->n; i++) {
        const seq_item_t *it = &q->items[i];
        uint32_t count = 0;
        while (count < it->max && set_has(it->set, (unsigned char)s[pos])) {
            pos++;
            count++;
        }
        if (count < it->min)
            return false;
    }
    return !q->anchored_end || s[pos] == '\0';
}
