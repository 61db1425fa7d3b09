/*
 * cmd_record.c: `moonport bff record --subject S [--input JSON] [--as USER]
 * [--roles R] --out FILE`: calls a service of a running stack and saves its
 * reply as a fixture file for `moonport bff test` (t.file("fixtures/...")),
 * so fixtures start from what the services really answer.
 */
#include <stdio.h>
#include <string.h>
#include <jansson.h>
#include "mp/bus.h"
#include "bff_int.h"

static const char *arg(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

int mp_bff_cmd_record(mp_bus_t *bus, int argc, char **argv)
{
    const char *subject = arg(argc, argv, "--subject"), *input = arg(argc, argv, "--input");
    const char *out = arg(argc, argv, "--out"), *as = arg(argc, argv, "--as"), *roles = arg(argc, argv, "--roles");
    if (subject == NULL || out == NULL) {
        fprintf(stderr,
                "usage: moonport bff record --subject S [--input JSON] [--as USER_ID] [--roles R] --out FILE\n");
        return 2;
    }
    json_error_t jerr;
    json_t *in = json_loads(input ? input : "{}", 0, &jerr);
    if (!json_is_object(in)) {
        fprintf(stderr, "moonport bff record: --input must be a JSON object\n");
        json_decref(in);
        return 2;
    }
    char *body = json_dumps(in, JSON_COMPACT);
    json_decref(in);
    mp_msg_t *reply = NULL;
    mp_bus_call_t call = {.subject = subject,
                          .body = body,
                          .len = strlen(body),
                          .timeout_ms = 5000,
                          .ctx = {.request_id = "bff-record", .auth_sub = as, .auth_roles = as ? roles : NULL}};
    mp_status_t st = mp_bus_request(&reply, bus, &call);
    free(body);
    if (st != MP_OK) {
        fprintf(stderr, "moonport bff record: %s: %s\n", subject, mp_err_get());
        return 1;
    }
    int status = mp_msg_status(reply);
    json_t *v = json_loadb(mp_msg_data(reply), mp_msg_len(reply), 0, &jerr);
    FILE *fp = fopen(out, "w");
    if (fp == NULL || v == NULL || json_dumpf(v, fp, JSON_INDENT(2) | JSON_SORT_KEYS) != 0) {
        fprintf(stderr, "moonport bff record: cannot write %s (is the reply JSON?)\n", out);
        if (fp)
            fclose(fp);
        json_decref(v);
        mp_msg_destroy(reply);
        return 1;
    }
    fputc('\n', fp);
    fclose(fp);
    json_decref(v);
    mp_msg_destroy(reply);
    printf("%s: status %d, saved to %s%s\n", subject, status, out,
           status >= 400 ? " (an error reply: use it with t.fail(subject, status, {body = ...}))" : "");
    return status >= 400 ? 3 : 0;
}
