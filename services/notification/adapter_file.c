/*
 * adapter_file.c: delivers each notification as one JSON file,
 * <notification.file_dir>/<notification id>.json, written to a temporary
 * name and renamed, so a reader never sees half a file. Tests read the
 * directory; a second delivery of the same message rewrites the same file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "adapter.h"

static const char *dir;

static void file_configure(mp_cfg_t *cfg, bool chosen)
{
    dir = mp_cfg_str(cfg, "notification.file_dir", ".run/notifications");
}

/* mkdir -p */
static mp_status_t make_dirs(const char *path)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return mp_err_set(MP_EIO, "notification.file_dir: cannot create %s: %s", p, strerror(errno));
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        return mp_err_set(MP_EIO, "notification.file_dir: cannot create %s: %s", p, strerror(errno));
    return MP_OK;
}

static mp_status_t file_init(mp_cfg_t *cfg)
{
    return make_dirs(dir);
}

static mp_status_t file_send(const notif_message_t *m)
{
    char tmp[1200], path[1200];
    snprintf(tmp, sizeof(tmp), "%s/.%s.json.tmp", dir, m->id);
    snprintf(path, sizeof(path), "%s/%s.json", dir, m->id);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return mp_err_set(MP_EIO, "cannot create %s: %s", tmp, strerror(errno));
    size_t off = 0;
    while (off < m->len) {
        ssize_t n = write(fd, m->json + off, m->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return mp_err_set(MP_EIO, "cannot write %s: %s", tmp, strerror(e));
        }
        off += (size_t)n;
    }
    bool ok = write(fd, "\n", 1) == 1;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return mp_err_set(MP_EIO, "cannot write %s: %s", path, strerror(e));
    }
    return MP_OK;
}

const notif_adapter_t notif_adapter_file = {
    .name = "file", .configure = file_configure, .init = file_init, .send = file_send};
