/*
 * main.c: the `moonport` command. One binary for every role and tool:
 *
 *   moonport serve [--config F] [--roles gateway,auth,...]
 *   moonport migrate [--config F] [--roles ...]
 *   moonport backup --out DIR [--config F]
 *   moonport restore --from DIR [--force] [--config F]
 *   moonport version
 *   moonport <service command>      e.g. `moonport user create`, `moonport auth rotate-key`
 *
 * Service commands come from each service's MP_SERVICE(.commands = ...).
 */
#include <stdio.h>
#include <string.h>
#include "mp/backup.h"
#include "mp/serve.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: moonport <command> [options]\n\n"
                 "  serve [--config F] [--roles a,b]   run roles (default: all) until SIGTERM\n"
                 "  migrate [--config F] [--roles a,b] apply database migrations and exit\n"
                 "  backup --out DIR [--config F]      every schema and the events stream into DIR\n"
                 "  restore --from DIR [--force]       put a backup back (the platform stopped)\n"
                 "  version                            print the version\n");
    for (size_t i = 0; mp_services[i]; i++)
        for (const mp_command_t *c = mp_services[i]->commands; c && c->name; c++)
            fprintf(out, "  %-34s %s\n", c->name, c->usage);
    fprintf(out, "\nroles:");
    for (size_t i = 0; mp_services[i]; i++)
        fprintf(out, " %s", mp_services[i]->name);
    fprintf(out, "\nconfig: --config, else $MOONPORT_CONFIG, else config/moonport.yaml\n");
}

/* A command name is one or two words; returns how many argv words it matched (0: none). */
static int matches(const char *name, int argc, char **argv)
{
    const char *space = strchr(name, ' ');
    if (space == NULL)
        return strcmp(name, argv[1]) == 0 ? 1 : 0;
    size_t n = (size_t)(space - name);
    if (argc > 2 && strlen(argv[1]) == n && strncmp(argv[1], name, n) == 0 && strcmp(argv[2], space + 1) == 0)
        return 2;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "serve") == 0)
        return mp_serve_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "migrate") == 0)
        return mp_migrate_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "backup") == 0)
        return mp_backup_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "restore") == 0)
        return mp_restore_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("moonport %s\n", MP_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; mp_services[i]; i++) {
        for (const mp_command_t *c = mp_services[i]->commands; c && c->name; c++) {
            int words = matches(c->name, argc, argv);
            if (words)
                return mp_serve_command(mp_services[i], c, argc - words, argv + words);
        }
    }
    fprintf(stderr, "moonport: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
