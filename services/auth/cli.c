/*
 * cli.c: Auth's subcommands: `moonport user create` (operators seed admin
 * accounts; the password comes on stdin so it never shows in `ps` or shell
 * history) and `moonport auth rotate-key`. Creating an account provisions
 * its profile over NATS, so `moonport serve` with the user role must run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "auth_int.h"
#include "signing.h"

static const char *arg_of(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

int auth_cmd_user_create(mp_svc_t *svc, int argc, char **argv)
{
    char email[256], password[1100], roles[128], local[128], id[37];
    const char *raw = arg_of(argc, argv, "--email"), *role = arg_of(argc, argv, "--role");
    const char *name = arg_of(argc, argv, "--name");
    if (raw == NULL || !auth_email_normalize(email, sizeof(email), raw)) {
        fprintf(stderr, "moonport user create: --email needs a valid e-mail address\n");
        return 2;
    }
    if (role && strcmp(role, "admin") != 0 && strcmp(role, "user") != 0) {
        fprintf(stderr, "moonport user create: --role is user or admin\n");
        return 2;
    }
    if (fgets(password, sizeof(password), stdin) == NULL) {
        fprintf(stderr, "moonport user create: give the password on stdin\n");
        return 2;
    }
    password[strcspn(password, "\r\n")] = '\0';
    mp_input_t in;
    mp_input_init(&in, NULL);
    auth_password_rules(&in, "password", password, email);
    if (!mp_input_ok(&in)) {
        fprintf(stderr, "moonport user create: the password must have at least 10 characters and not be the e-mail\n");
        mp_input_dispose(&in);
        return 2;
    }
    mp_input_dispose(&in);
    snprintf(roles, sizeof(roles), role && strcmp(role, "admin") == 0 ? "{user,admin}" : "{user}");
    snprintf(local, sizeof(local), "%.*s", (int)(strchr(email, '@') - email), email);

    /* like registration: account and profile together, or neither (the user role must be running); the bus
     * connects in the background, so give it a moment first */
    for (int i = 0; i < 50 && !mp_bus_connected(mp_svc_bus(svc)); i++)
        usleep(100 * 1000);
    mp_db_conn_t *db = NULL;
    mp_status_t st = mp_db_acquire(&db, mp_svc_db(svc), 5000);
    if (st == MP_OK)
        st = mp_db_begin(db);
    if (st == MP_OK)
        st = auth_user_insert(db, id, email, password, name ? name : local, roles);
    if (st == MP_OK)
        st = auth_provision_profile(mp_svc_bus(svc), NULL, id, email, name ? name : local);
    if (st == MP_OK)
        st = mp_db_commit(db);
    mp_db_release(db);
    memset(password, 0, sizeof(password));
    if (st == MP_ECONFLICT) {
        fprintf(stderr, "moonport user create: %s already exists\n", email);
        return 3;
    }
    if (st == MP_EUNAVAIL) {
        fprintf(stderr, "moonport user create: %s (is `moonport serve` with the user role running?)\n", mp_err_get());
        return 1;
    }
    if (st != MP_OK) {
        fprintf(stderr, "moonport user create: %s\n", mp_err_get());
        return 1;
    }
    printf("%s\n", id);
    return 0;
}

int auth_cmd_rotate_key(mp_svc_t *svc, int argc, char **argv)
{
    const char *dir = arg_of(argc, argv, "--dir");
    char *kid = NULL;
    if (auth_signing_rotate(&kid, dir ? dir : auth_cfg.keys_dir, (mp_jwt_alg_t)auth_cfg.key_alg) != MP_OK) {
        fprintf(stderr, "moonport auth rotate-key: %s\n", mp_err_get());
        return 1;
    }
    printf("%s\n", kid);
    free(kid);
    return 0;
}
