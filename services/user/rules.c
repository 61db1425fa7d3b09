/*
 * rules.c: profile field checks (see rules.h).
 *
 * Time zones are checked against the system's zoneinfo rather than a list in
 * the code, so a new zone works as soon as tzdata knows it; the name is held
 * to a strict alphabet first, so it can never walk out of the directory.
 */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include "rules.h"

/* ---- BCP 47 -------------------------------------------------------------- */

static size_t subtag_len(const char *p)
{
    size_t n = 0;
    while (p[n] && p[n] != '-')
        n++;
    return n;
}

static bool all_of(const char *p, size_t n, int (*cls)(int))
{
    for (size_t i = 0; i < n; i++)
        if (!cls((unsigned char)p[i]))
            return false;
    return n > 0;
}

bool user_locale_valid(const char *tag)
{
    size_t total = strlen(tag);
    if (total == 0 || total > 35)
        return false;
    const char *p = tag;
    size_t n = subtag_len(p);
    if (!all_of(p, n, isalpha) || n < 2 || n > 3) /* 5-8 letter languages are allowed by RFC 5646 but unused */
        return false;
    int stage = 1; /* 1: after language, 2: after script, 3: after region, 4: in variants */
    for (p += n; *p; p += n) {
        p++; /* the '-' */
        n = subtag_len(p);
        if (n == 0)
            return false;
        if (stage < 2 && n == 4 && all_of(p, n, isalpha)) {
            stage = 2;
        } else if (stage < 3 && ((n == 2 && all_of(p, n, isalpha)) || (n == 3 && all_of(p, n, isdigit)))) {
            stage = 3;
        } else if ((n >= 5 && n <= 8 && all_of(p, n, isalnum)) ||
                   (n == 4 && isdigit((unsigned char)p[0]) && all_of(p, n, isalnum))) {
            stage = 4;
        } else {
            return false;
        }
    }
    return true;
}

/* ---- IANA time zones -------------------------------------------------------------- */

/* Used only when the system has no zoneinfo directory (minimal containers). */
static const char *const fallback_zones[] = {
    "UTC",
    "Etc/UTC",
    "GMT",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Amsterdam",
    "Europe/Brussels",
    "Europe/Vienna",
    "Europe/Zurich",
    "Europe/Stockholm",
    "Europe/Oslo",
    "Europe/Copenhagen",
    "Europe/Helsinki",
    "Europe/Warsaw",
    "Europe/Prague",
    "Europe/Athens",
    "Europe/Istanbul",
    "Europe/Kyiv",
    "Europe/Moscow",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Toronto",
    "America/Mexico_City",
    "America/Sao_Paulo",
    "America/Buenos_Aires",
    "Africa/Cairo",
    "Africa/Lagos",
    "Africa/Johannesburg",
    "Africa/Nairobi",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Australia/Sydney",
    "Australia/Perth",
    "Pacific/Auckland",
    NULL,
};

static bool zone_name_shape_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64 || name[0] == '/' || name[n - 1] == '/')
        return false;
    if (strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_+-") != n)
        return false;
    /* every component must start with a letter: rules out "", ".", ".." and "-x" */
    for (const char *p = name; p; p = strchr(p, '/')) {
        if (*p == '/')
            p++;
        if (!isalpha((unsigned char)*p))
            return false;
    }
    return true;
}

bool user_timezone_valid(const char *dir, const char *name)
{
    struct stat st;
    char path[512], magic[4];
    if (!zone_name_shape_ok(name))
        return false;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        for (size_t i = 0; fallback_zones[i]; i++)
            if (strcmp(fallback_zones[i], name) == 0)
                return true;
        return false;
    }
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return false;
    /* zone.tab, tzdata.zi and friends live there too: only compiled zone files count */
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && read(fd, magic, 4) == 4 && memcmp(magic, "TZif", 4) == 0;
    close(fd);
    return ok;
}

/* ---- JSON ------------------------------------------------------------------------------ */

int user_json_depth(const json_t *v)
{
    int deepest = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)v, k, m)
        {
            int d = user_json_depth(m);
            if (d > deepest)
                deepest = d;
        }
        return 1 + deepest;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m)
        {
            int d = user_json_depth(m);
            if (d > deepest)
                deepest = d;
        }
        return 1 + deepest;
    }
    return 0;
}
