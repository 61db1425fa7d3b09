/*
 * signing.c: the signing key directory (see signing.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "mp/alloc.h"
#include "mp/buf.h"
#include "mp/bus.h"
#include "mp/log.h"
#include "signing.h"

#define MAX_KEYS 16

typedef struct keyset {
    mp_jwt_signer_t *signers[MAX_KEYS]; /* sorted by kid, newest last */
    size_t n;
    int refs;
} keyset_t;

static struct {
    pthread_mutex_t mu;
    keyset_t *cur;
    char *dir;
    struct timespec mtime;
    int64_t checked_ms;
} st = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void keyset_release(keyset_t *ks)
{
    if (ks == NULL)
        return;
    pthread_mutex_lock(&st.mu);
    int last = --ks->refs == 0;
    pthread_mutex_unlock(&st.mu);
    if (!last)
        return;
    for (size_t i = 0; i < ks->n; i++)
        mp_jwt_signer_destroy(ks->signers[i]);
    free(ks);
}

static keyset_t *keyset_get(void)
{
    pthread_mutex_lock(&st.mu);
    keyset_t *ks = st.cur;
    if (ks)
        ks->refs++;
    pthread_mutex_unlock(&st.mu);
    return ks;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static mp_status_t read_file(mp_buf_t *out, const char *path)
{
    FILE *fp = fopen(path, "rb");
    char chunk[4096];
    size_t n;
    if (fp == NULL)
        return mp_err_set(MP_EIO, "%s: %s", path, strerror(errno));
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        mp_buf_append(out, chunk, n);
    fclose(fp);
    return MP_OK;
}

/* Reads every <kid>.pem in the directory, oldest first. */
static mp_status_t load_dir(keyset_t **out, const char *dir)
{
    DIR *d = opendir(dir);
    char *names[MAX_KEYS * 4];
    size_t nnames = 0;
    mp_status_t rc = MP_OK;
    if (d == NULL)
        return mp_err_set(MP_EIO, "signing keys directory %s: %s", dir, strerror(errno));
    for (struct dirent *e; (e = readdir(d)) != NULL && nnames < MAX_KEYS * 4;) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".pem") == 0 && e->d_name[0] != '.')
            names[nnames++] = mp_xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, nnames, sizeof(*names), by_name);
    keyset_t *ks = mp_xcalloc(1, sizeof(*ks));
    ks->refs = 1;
    /* keep the newest MAX_KEYS: older ones signed tokens that have long expired */
    for (size_t i = nnames > MAX_KEYS ? nnames - MAX_KEYS : 0; i < nnames && rc == MP_OK; i++) {
        char path[1024], kid[256];
        mp_buf_t pem = MP_BUF_INIT;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        snprintf(kid, sizeof(kid), "%.*s", (int)(strlen(names[i]) - 4), names[i]);
        rc = read_file(&pem, path);
        if (rc == MP_OK && mp_jwt_signer_create(&ks->signers[ks->n], kid, pem.base, pem.len) != MP_OK)
            rc = mp_err_set(MP_EINVAL, "%s is not a usable signing key: %s", path, mp_err_get());
        else if (rc == MP_OK)
            ks->n++;
        if (pem.base)
            memset(pem.base, 0, pem.len);
        mp_buf_dispose(&pem);
    }
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    if (rc != MP_OK) {
        ks->refs = 1;
        for (size_t i = 0; i < ks->n; i++)
            mp_jwt_signer_destroy(ks->signers[i]);
        free(ks);
        return rc;
    }
    *out = ks;
    return MP_OK;
}

static void new_kid(char *kid, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(kid, size, "k%Y%m%dT%H%M%S", &tm);
    snprintf(kid + n, size - n, "%03ld", ts.tv_nsec / 1000000);
}

mp_status_t auth_signing_rotate(char **kid_out, const char *dir, mp_jwt_alg_t alg)
{
    char kid[64], path[1024], tmp[1100];
    char *pem = NULL;
    mp_status_t rc = mp_jwt_keygen(&pem, alg);
    if (rc != MP_OK)
        return rc;
    new_kid(kid, sizeof(kid));
    snprintf(path, sizeof(path), "%s/%s.pem", dir, kid);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    /* private key: owner-only, written whole then renamed so a reader never sees half a key */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
    size_t len = strlen(pem);
    if (fd < 0 || write(fd, pem, len) != (ssize_t)len || fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        rc = mp_err_set(MP_EIO, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    memset(pem, 0, len);
    free(pem);
    if (rc == MP_OK && kid_out)
        *kid_out = mp_xstrdup(kid);
    return rc;
}

/* mkdir -p with owner-only permissions: the directory holds private keys */
static int make_dirs(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(path, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

static void note_mtime(void)
{
    struct stat sb;
    if (stat(st.dir, &sb) == 0)
        st.mtime = sb.st_mtim;
    st.checked_ms = mp_now_ms();
}

mp_status_t auth_signing_init(const char *dir, bool generate, mp_jwt_alg_t alg)
{
    keyset_t *ks = NULL;
    mp_status_t rc;
    st.dir = mp_xstrdup(dir);
    if (generate && make_dirs(dir) != 0)
        return mp_err_set(MP_EIO, "cannot create %s: %s", dir, strerror(errno));
    if ((rc = load_dir(&ks, dir)) != MP_OK)
        return rc;
    if (ks->n == 0) {
        keyset_release(ks);
        if (!generate)
            return mp_err_set(MP_EINVAL, "no signing keys in %s (run `moonport auth rotate-key`)", dir);
        char *kid = NULL;
        if ((rc = auth_signing_rotate(&kid, dir, alg)) != MP_OK)
            return rc;
        mp_log_kv(MP_LOG_INFO, NULL, "generated a first signing key", "kid", kid, NULL);
        free(kid);
        if ((rc = load_dir(&ks, dir)) != MP_OK)
            return rc;
    }
    note_mtime();
    st.cur = ks;
    return MP_OK;
}

void auth_signing_fini(void)
{
    keyset_t *ks = st.cur;
    st.cur = NULL;
    keyset_release(ks);
    free(st.dir);
    st.dir = NULL;
}

mp_status_t auth_signing_reload(bool if_changed)
{
    if (if_changed) {
        struct stat sb;
        pthread_mutex_lock(&st.mu);
        bool due = mp_now_ms() - st.checked_ms >= 2000;
        if (due)
            st.checked_ms = mp_now_ms();
        pthread_mutex_unlock(&st.mu);
        if (!due || stat(st.dir, &sb) != 0 ||
            (sb.st_mtim.tv_sec == st.mtime.tv_sec && sb.st_mtim.tv_nsec == st.mtime.tv_nsec))
            return MP_OK;
    }
    keyset_t *ks = NULL;
    mp_status_t rc = load_dir(&ks, st.dir);
    if (rc != MP_OK)
        return rc;
    if (ks->n == 0) {
        keyset_release(ks);
        return mp_err_set(MP_EINVAL, "no signing keys left in %s; keeping the loaded ones", st.dir);
    }
    pthread_mutex_lock(&st.mu);
    keyset_t *old = st.cur;
    st.cur = ks;
    pthread_mutex_unlock(&st.mu);
    note_mtime();
    keyset_release(old);
    mp_log_kv(MP_LOG_INFO, NULL, "signing keys reloaded", "newest", mp_jwt_signer_kid(ks->signers[ks->n - 1]), NULL);
    return MP_OK;
}

mp_status_t auth_signing_sign(char **token, json_t *claims)
{
    auth_signing_reload(true);
    keyset_t *ks = keyset_get();
    if (ks == NULL || ks->n == 0) {
        keyset_release(ks);
        return mp_err_set(MP_EINTERNAL, "no signing key");
    }
    mp_status_t rc = mp_jwt_sign(token, ks->signers[ks->n - 1], claims);
    keyset_release(ks);
    return rc;
}

json_t *auth_signing_jwks(void)
{
    auth_signing_reload(true);
    json_t *keys = json_array();
    keyset_t *ks = keyset_get();
    for (size_t i = 0; ks && i < ks->n; i++) {
        json_t *jwk = NULL;
        if (mp_jwt_signer_public_jwk(&jwk, ks->signers[i]) == MP_OK)
            json_array_append_new(keys, jwk);
    }
    keyset_release(ks);
    return json_pack("{s:o}", "keys", keys);
}
