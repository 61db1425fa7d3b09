/*
 * backup_manifest.c: manifest.json, the table of contents of a backup (see
 * backup_int.h and docs/operations.md for its fields).
 *
 * The manifest is written last and atomically, so a folder whose backup was
 * interrupted has none and is refused. Reading it verifies everything a
 * restore will use before anything is changed: the format, the sections,
 * and the size and SHA-256 of every file it lists. File names are checked
 * to stay inside the folder: a manifest is input.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "backup_int.h"
#include "mp/events.h"
#include "mp/json.h"

bool mp_backup__name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 128 || name[0] == '.')
        return false;
    return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

bool mp_backup__timestamp_ok(const char *ts)
{
    /* digits where the pattern has 9, the other characters as they are */
    static const char pattern[] = "9999-99-99T99:99:99";
    size_t n = ts ? strlen(ts) : 0, p = sizeof(pattern) - 1;
    if (n < p + 1 || ts[n - 1] != 'Z')
        return false;
    for (size_t i = 0; i < p; i++)
        if (pattern[i] == '9' ? (ts[i] < '0' || ts[i] > '9') : ts[i] != pattern[i])
            return false;
    if (n == p + 1)
        return true;
    if (ts[p] != '.' || n < p + 3 || n > p + 8)
        return false;
    return strspn(ts + p + 1, "0123456789") == n - p - 2;
}

/* SHA-256 and size of dir/name. */
static mp_status_t sha256_file(char hex[65], uint64_t *bytes, const char *dir, const char *name)
{
    char path[4096];
    unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    ssize_t n;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mp_err_set(MP_EIO, "%s: %s", name, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    *bytes = 0;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        *bytes += (uint64_t)n;
    }
    int err = n < 0 ? errno : 0;
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    close(fd);
    if (err)
        return mp_err_set(MP_EIO, "%s: %s", name, strerror(err));
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return MP_OK;
}

mp_status_t mp_backup__add_file(json_t *files, const char *dir, const char *name)
{
    char hex[65];
    uint64_t bytes;
    mp_status_t st = sha256_file(hex, &bytes, dir, name);
    if (st == MP_OK)
        json_object_set_new(files, name, json_pack("{s:I, s:s}", "bytes", (json_int_t)bytes, "sha256", hex));
    return st;
}

mp_status_t mp_backup__write_json(const char *dir, const char *name, const json_t *v)
{
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *text = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t len = strlen(text);
    bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int err = errno;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    free(text);
    /* for the manifest, the rename is what makes the folder a backup: only a complete one ever has the name */
    if (!ok || rename(tmp, path) != 0) {
        err = ok ? errno : err;
        unlink(tmp);
        return mp_err_set(MP_EIO, "%s: %s", path, strerror(err));
    }
    return MP_OK;
}

/* ---- reading ---------------------------------------------------------------------------- */

static mp_status_t bad(const char *what)
{
    return mp_err_set(MP_EINVAL, "%s is not a moonport backup's manifest: %s", MP_BACKUP_MANIFEST, what);
}

/* Every file the manifest lists: a safe name, present, the size and SHA-256 it says. */
static mp_status_t verify_files(const json_t *files, const char *dir)
{
    const char *name;
    json_t *f;
    if (!json_is_object(files) || json_object_size(files) == 0)
        return bad("no \"files\"");
    json_object_foreach((json_t *)files, name, f)
    {
        const char *want = mp_json_str(f, "sha256");
        json_t *size = json_object_get(f, "bytes");
        char hex[65];
        uint64_t bytes = 0;
        if (!mp_backup__name_ok(name) || want == NULL || strlen(want) != 64 || !json_is_integer(size))
            return mp_err_set(MP_EINVAL, "%s: the entry for \"%s\" is malformed", MP_BACKUP_MANIFEST, name);
        if (sha256_file(hex, &bytes, dir, name) != MP_OK)
            return mp_err_set(MP_EINVAL, "%s is listed in the manifest but cannot be read: %s", name, mp_err_get());
        if (bytes != (uint64_t)json_integer_value(size) || strcmp(hex, want) != 0)
            return mp_err_set(MP_EINVAL,
                              "%s does not match the manifest (%s: the file is damaged or was changed); refusing "
                              "this backup",
                              name, bytes != (uint64_t)json_integer_value(size) ? "size" : "SHA-256");
    }
    return MP_OK;
}

static bool listed(const json_t *files, const char *name)
{
    return name && json_object_get(files, name) != NULL;
}

static bool known_name(const char *name, const char *const *known, size_t nknown)
{
    for (size_t i = 0; name && i < nknown; i++)
        if (strcmp(known[i], name) == 0)
            return true;
    return false;
}

static mp_status_t check_schemas(const json_t *m, const char *const *known, size_t nknown)
{
    const json_t *schemas = json_object_get(m, "schemas"), *files = json_object_get(m, "files");
    size_t i, j;
    json_t *s;
    if (!json_is_array(schemas) || json_array_size(schemas) == 0)
        return bad("no \"schemas\"");
    json_array_foreach((json_t *)schemas, i, s)
    {
        const char *name = mp_json_str(s, "name");
        if (!known_name(name, known, nknown))
            return mp_err_set(MP_EINVAL, "the backup has schema \"%s\", which this build has no service for",
                              name ? name : "(none)");
        for (j = 0; j < i; j++)
            if (strcmp(mp_json_str(json_array_get(schemas, j), "name"), name) == 0)
                return mp_err_set(MP_EINVAL, "%s lists schema \"%s\" twice", MP_BACKUP_MANIFEST, name);
        if (!listed(files, mp_json_str(s, "file")) || !mp_backup__timestamp_ok(mp_json_str(s, "events_since")))
            return mp_err_set(MP_EINVAL, "%s: the entry for schema \"%s\" is malformed", MP_BACKUP_MANIFEST, name);
    }
    return MP_OK;
}

static mp_status_t check_stream(const json_t *m)
{
    const json_t *stream = json_object_get(m, "stream"), *files = json_object_get(m, "files");
    const char *name = mp_json_str(stream, "name");
    if (name == NULL || strcmp(name, MP_EVENTS_STREAM) != 0)
        return bad("its \"stream\" is not " MP_EVENTS_STREAM);
    if (!listed(files, mp_json_str(stream, "file")) || !listed(files, mp_json_str(stream, "info_file")) ||
        !json_is_integer(json_object_get(stream, "last_seq")))
        return bad("its \"stream\" entry is malformed");
    return MP_OK;
}

mp_status_t mp_backup__manifest_read(json_t **out, const char *dir, const char *const *known, size_t nknown)
{
    char path[4096];
    json_error_t jerr;
    snprintf(path, sizeof(path), "%s/%s", dir, MP_BACKUP_MANIFEST);
    if (access(path, F_OK) != 0)
        return mp_err_set(MP_EINVAL, "%s has no %s: not a backup, or one that did not finish", dir, MP_BACKUP_MANIFEST);
    json_t *m = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (m == NULL)
        return mp_err_set(MP_EINVAL, "%s: line %d: %s", path, jerr.line, jerr.text);
    const char *format = mp_json_str(m, "format");
    json_t *version = json_object_get(m, "format_version");
    mp_status_t st = MP_OK;
    if (format == NULL || strcmp(format, MP_BACKUP_FORMAT) != 0)
        st = bad("no \"format\": \"" MP_BACKUP_FORMAT "\"");
    else if (!json_is_integer(version) || json_integer_value(version) != MP_BACKUP_FORMAT_VERSION)
        st = mp_err_set(MP_EINVAL, "%s: format_version %lld; this build reads version %d", MP_BACKUP_MANIFEST,
                        json_is_integer(version) ? (long long)json_integer_value(version) : -1LL,
                        MP_BACKUP_FORMAT_VERSION);
    if (st == MP_OK)
        st = check_schemas(m, known, nknown);
    if (st == MP_OK)
        st = check_stream(m);
    if (st == MP_OK)
        st = verify_files(json_object_get(m, "files"), dir);
    if (st != MP_OK) {
        json_decref(m);
        return st;
    }
    *out = m;
    return MP_OK;
}
