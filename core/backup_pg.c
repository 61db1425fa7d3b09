/*
 * backup_pg.c: the PostgreSQL side of backups: pg_dump, pg_restore and
 * psql as child processes (see backup_int.h).
 *
 * Children get argv without a shell, so a DSN is one argument and nothing
 * is interpreted. The password goes into the child's environment only
 * (PGPASSWORD), never onto a command line, which any local user could read
 * in /proc. A restore pipes every archive of a database, as SQL from
 * `pg_restore --clean --if-exists`, into one `psql --single-transaction`,
 * so the schemas of that database change together or not at all: when any
 * archive fails, psql is killed before it sees the end of its input, and
 * the server rolls the transaction back.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "backup_int.h"
#include "mp/alloc.h"
#include "mp/buf.h"

extern char **environ;

/* ---- finding the programs --------------------------------------------------------------- */

static bool in_path(char *out, size_t size, const char *name)
{
    const char *path = getenv("PATH");
    for (const char *p = path; p && *p;) {
        size_t n = strcspn(p, ":");
        if (n > 0 && snprintf(out, size, "%.*s/%s", (int)n, p, name) < (int)size && access(out, X_OK) == 0)
            return true;
        p += n + (p[n] == ':');
    }
    return false;
}

/* The major version in "/usr/lib/postgresql/<N>/bin/<name>", for picking the newest. */
static long major_of(const char *path)
{
    const char *v = path + strlen("/usr/lib/postgresql/");
    return strtol(v, NULL, 10);
}

mp_status_t mp_backup__pg_tool(char *out, size_t size, const char *name)
{
    char pattern[128];
    glob_t g = {0};
    long best = -1;
    if (in_path(out, size, name))
        return MP_OK;
    snprintf(pattern, sizeof(pattern), "/usr/lib/postgresql/*/bin/%s", name);
    if (glob(pattern, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            if (access(g.gl_pathv[i], X_OK) == 0 && major_of(g.gl_pathv[i]) > best) {
                best = major_of(g.gl_pathv[i]);
                snprintf(out, size, "%s", g.gl_pathv[i]);
            }
        }
    }
    globfree(&g);
    if (best < 0)
        return mp_err_set(MP_ENOTFOUND,
                          "%s not found on PATH or in /usr/lib/postgresql/*/bin (install the "
                          "PostgreSQL client, e.g. postgresql-client)",
                          name);
    return MP_OK;
}

/* ---- children --------------------------------------------------------------------------- */

/* The process environment without any PGPASSWORD, plus ours. The caller frees it with free_env(). */
static char **child_env(const char *password)
{
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    char **env = mp_xcalloc(n + 2, sizeof(*env));
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "PGPASSWORD=", 11) != 0)
            env[k++] = environ[i];
    if (password)
        env[k++] = mp_xasprintf("PGPASSWORD=%s", password);
    env[k] = NULL;
    return env;
}

static void free_env(char **env, const char *password)
{
    size_t k = 0;
    while (env[k])
        k++;
    if (password && k > 0) { /* ours is the last entry: wipe it, as mp_cfg_secret_free() does */
        char *own = env[k - 1];
        memset(own, 0, strlen(own));
        free(own);
    }
    free(env);
}

/* Starts argv[0] with stdin/stdout from `in_fd`/`out_fd` (-1: ours). Our descriptors are close-on-exec. */
static mp_status_t spawn(pid_t *pid, char *const argv[], const char *password, int in_fd, int out_fd)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t dflt;
    posix_spawn_file_actions_init(&fa);
    if (in_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, in_fd, STDIN_FILENO);
    if (out_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
    /* we ignore SIGPIPE to see a dead psql as EPIPE; the children get the default back */
    posix_spawnattr_init(&attr);
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &dflt);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    char **env = child_env(password);
    int rc = posix_spawn(pid, argv[0], &fa, &attr, argv, env);
    free_env(env, password);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return mp_err_set(MP_EINTERNAL, "cannot run %s: %s", argv[0], strerror(rc));
    return MP_OK;
}

/* Waits for a child; MP_OK when it exited 0. `what` names it in the error ("pg_dump of schema auth"). */
static mp_status_t reap(pid_t pid, const char *what)
{
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR)
            return mp_err_set(MP_EINTERNAL, "%s: %s", what, strerror(errno));
    if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0)
        return MP_OK;
    if (WIFEXITED(ws))
        return mp_err_set(MP_EINTERNAL, "%s failed (exit %d; its message is above)", what, WEXITSTATUS(ws));
    return mp_err_set(MP_EINTERNAL, "%s was killed by signal %d", what, WTERMSIG(ws));
}

static mp_status_t run(char *const argv[], const char *password, int out_fd, const char *what)
{
    pid_t pid;
    mp_status_t st = spawn(&pid, argv, password, -1, out_fd);
    return st == MP_OK ? reap(pid, what) : st;
}

/* ---- dump --------------------------------------------------------------------------------- */

mp_status_t mp_backup__pg_dump(const char *dsn, const char *password, const char *schema, const char *snapshot,
                               const char *path)
{
    char exe[512], what[128];
    mp_status_t st = mp_backup__pg_tool(exe, sizeof(exe), "pg_dump");
    if (st != MP_OK)
        return st;
    /* a pattern, not SQL: an unquoted lower-case name matches exactly that schema (even "user") */
    char *a_schema = mp_xasprintf("--schema=%s", schema), *a_file = mp_xasprintf("--file=%s", path);
    char *a_db = mp_xasprintf("--dbname=%s", dsn);
    char *a_snap = snapshot ? mp_xasprintf("--snapshot=%s", snapshot) : NULL;
    char *argv[] = {exe, "--format=custom", "--no-password", a_schema, a_file, a_db, a_snap, NULL};
    snprintf(what, sizeof(what), "pg_dump of schema %s", schema);
    st = run(argv, password, -1, what);
    free(a_schema);
    free(a_file);
    free(a_db);
    free(a_snap);
    return st;
}

/* ---- restore ------------------------------------------------------------------------------ */

mp_status_t mp_backup__pg_list(const char *path)
{
    char exe[512], what[600];
    mp_status_t st = mp_backup__pg_tool(exe, sizeof(exe), "pg_restore");
    if (st != MP_OK)
        return st;
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    char *argv[] = {exe, "--list", (char *)path, NULL};
    snprintf(what, sizeof(what), "pg_restore --list %s", path);
    st = run(argv, NULL, devnull, what);
    if (devnull >= 0)
        close(devnull);
    return st == MP_OK ? MP_OK : mp_err_set(MP_EINVAL, "%s", mp_err_get());
}

bool mp_backup__write_all(int fd, const void *data, size_t n)
{
    const char *s = data;
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        s += w;
        n -= (size_t)w;
    }
    return true;
}

/* Before the archives: quiet notices, and each schema dropped whole, so objects a later migration added (which the
 * archive's own DROPs do not know) cannot stop the restore. Names are the services' own ([a-z_]), quoted because
 * "user" and "order" are reserved words. */
static void preamble(mp_buf_t *b, const char *const *schemas, size_t n)
{
    mp_buf_puts(b, "SET client_min_messages = warning;\n");
    for (size_t i = 0; i < n; i++) {
        mp_buf_puts(b, "DROP SCHEMA IF EXISTS \"");
        mp_buf_puts(b, schemas[i]);
        mp_buf_puts(b, "\" CASCADE;\n");
    }
}

/* Feeds psql (writing to `to_psql`): the preamble, then each archive as SQL. Stops at the first failure. */
static mp_status_t feed(int to_psql, const char *pg_restore, const char *const *schemas, const char *const *paths,
                        size_t n)
{
    char what[128];
    mp_buf_t pre = MP_BUF_INIT;
    preamble(&pre, schemas, n);
    bool ok = mp_backup__write_all(to_psql, pre.base, pre.len);
    mp_buf_dispose(&pre);
    if (!ok)
        return mp_err_set(MP_EINTERNAL, "psql stopped reading (its message is above)");
    for (size_t i = 0; i < n; i++) {
        char *argv[] = {(char *)pg_restore, "--clean", "--if-exists", "--file=-", (char *)paths[i], NULL};
        snprintf(what, sizeof(what), "pg_restore of schema %s", schemas[i]);
        mp_status_t st = run(argv, NULL, to_psql, what);
        if (st != MP_OK)
            return st;
    }
    return MP_OK;
}

/* After a failed feed: psql commits when its input ends, so with an archive missing it must never see that end:
 * it is killed first, and the server rolls its transaction back. When psql had already stopped by itself (an SQL
 * error), that is the cause, and the error says so. Reaps psql in both cases. */
static void stop_psql(pid_t pid)
{
    int ws = 0;
    if (waitpid(pid, &ws, WNOHANG) == pid) {
        mp_err_set(MP_EINTERNAL, "psql stopped (exit %d; its message is above); nothing was committed",
                   WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
        return;
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
}

mp_status_t mp_backup__pg_restore(const char *dsn, const char *password, const char *const *schemas,
                                  const char *const *paths, size_t n)
{
    char psql[512], pg_restore[512];
    int pipefd[2] = {-1, -1}, devnull = -1;
    pid_t pid = -1;
    mp_status_t st = mp_backup__pg_tool(psql, sizeof(psql), "psql");
    if (st == MP_OK)
        st = mp_backup__pg_tool(pg_restore, sizeof(pg_restore), "pg_restore");
    if (st != MP_OK)
        return st;
    if (pipe2(pipefd, O_CLOEXEC) != 0 || (devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0) {
        st = mp_err_set(MP_EINTERNAL, "restore: %s", strerror(errno));
        goto cleanup;
    }
    signal(SIGPIPE, SIG_IGN);
    char *a_db = mp_xasprintf("--dbname=%s", dsn);
    char *argv[] = {
        psql,       "--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1", "--single-transaction",
        "--file=-", a_db,          NULL};
    st = spawn(&pid, argv, password, pipefd[0], devnull);
    free(a_db);
    close(pipefd[0]);
    pipefd[0] = -1;
    if (st != MP_OK)
        goto cleanup;
    st = feed(pipefd[1], pg_restore, schemas, paths, n);
    if (st != MP_OK)
        stop_psql(pid); /* before the close below, which psql would take as the end of its input */
    close(pipefd[1]);
    pipefd[1] = -1;
    if (st == MP_OK)
        st = reap(pid, "psql");
cleanup:
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    if (devnull >= 0)
        close(devnull);
    return st;
}
