/*
 * test_backup_manifest.c: unit tests for core/backup_manifest.c: names that
 * stay in the backup's folder, the timestamps it writes, and a manifest
 * that is read back only when every file it lists is there, unchanged, and
 * every schema is one this build knows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/backup_int.h"
#include "mp/status.h"

static const char *const known[] = {"auth", "order"};

typedef struct fixture {
    char dir[64];
} fixture_t;

static void put(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A complete backup folder: two archives, a stream snapshot and its info, and the manifest. */
static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/mp-test-backup-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    put(fx->dir, "auth.dump", "PGDMP auth archive");
    put(fx->dir, "order.dump", "PGDMP order archive");
    put(fx->dir, "EVENTS.snapshot", "stream bytes");
    put(fx->dir, "EVENTS.json", "{\"config\": {}, \"state\": {}}");
    json_t *files = json_object();
    for (const char *const *n =
             (const char *const[]){"auth.dump", "order.dump", "EVENTS.snapshot", "EVENTS.json", NULL};
         *n; n++)
        assert_int_equal(mp_backup__add_file(files, fx->dir, *n), MP_OK);
    json_t *m = json_pack("{s:s, s:i, s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}], s:{s:s, s:s, s:s, s:i}, s:o}", "format",
                          MP_BACKUP_FORMAT, "format_version", MP_BACKUP_FORMAT_VERSION, "schemas", "name", "auth",
                          "file", "auth.dump", "events_since", "2026-11-23T21:07:08.123456Z", "name", "order", "file",
                          "order.dump", "events_since", "2026-11-23T21:07:08Z", "stream", "name", "EVENTS", "file",
                          "EVENTS.snapshot", "info_file", "EVENTS.json", "last_seq", 42, "files", files);
    assert_int_equal(mp_backup__write_json(fx->dir, MP_BACKUP_MANIFEST, m), MP_OK);
    json_decref(m);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static mp_status_t read_back(fixture_t *fx)
{
    json_t *m = NULL;
    mp_status_t st = mp_backup__manifest_read(&m, fx->dir, known, 2);
    assert_true((st == MP_OK) == (m != NULL));
    json_decref(m);
    return st;
}

/* Rewrites one field of the manifest through `edit`. */
static void edit_manifest(fixture_t *fx, void (*edit)(json_t *m))
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", fx->dir, MP_BACKUP_MANIFEST);
    json_t *m = json_load_file(path, 0, NULL);
    assert_non_null(m);
    edit(m);
    assert_int_equal(mp_backup__write_json(fx->dir, MP_BACKUP_MANIFEST, m), MP_OK);
    json_decref(m);
}

static void test_backup_manifest_names_stay_in_the_folder(void **state)
{
    assert_true(mp_backup__name_ok("order.dump"));
    assert_true(mp_backup__name_ok("EVENTS.snapshot"));
    static const char *const bad[] = {"", "../x", "a/b", "/etc/passwd", ".hidden", "a b", "x\n", NULL};
    for (size_t i = 0; bad[i]; i++)
        assert_false(mp_backup__name_ok(bad[i]));
    assert_false(mp_backup__name_ok(NULL));
}

static void test_backup_manifest_timestamps(void **state)
{
    assert_true(mp_backup__timestamp_ok("2026-11-23T21:07:08Z"));
    assert_true(mp_backup__timestamp_ok("2026-11-23T21:07:08.123456Z"));
    static const char *const bad[] = {"2026-11-23 21:07:08Z",
                                      "2026-11-23T21:07:08",
                                      "2026-11-23T21:07:08.Z",
                                      "2026-11-23T21:07:08.1234567Z",
                                      "2026-11-23T21:07:08+01:00",
                                      "'; DROP",
                                      NULL};
    for (size_t i = 0; bad[i]; i++)
        assert_false(mp_backup__timestamp_ok(bad[i]));
}

static void test_backup_manifest_reads_back_what_was_written(void **state)
{
    assert_int_equal(read_back(*state), MP_OK);
}

static void test_backup_manifest_refuses_a_changed_file(void **state)
{
    fixture_t *fx = *state;
    put(fx->dir, "order.dump", "PGDMP order archivE"); /* same size, one byte different */
    assert_int_equal(read_back(fx), MP_EINVAL);
    assert_non_null(strstr(mp_err_get(), "order.dump does not match the manifest (SHA-256"));
    put(fx->dir, "order.dump", "PGDMP order archive, longer");
    assert_int_equal(read_back(fx), MP_EINVAL);
    assert_non_null(strstr(mp_err_get(), "(size"));
}

static void test_backup_manifest_refuses_a_missing_file(void **state)
{
    fixture_t *fx = *state;
    char path[256];
    snprintf(path, sizeof(path), "%s/EVENTS.snapshot", fx->dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(read_back(fx), MP_EINVAL);
    assert_non_null(strstr(mp_err_get(), "EVENTS.snapshot is listed in the manifest but cannot be read"));
}

static void test_backup_manifest_refuses_a_folder_without_one(void **state)
{
    fixture_t *fx = *state;
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", fx->dir, MP_BACKUP_MANIFEST);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(read_back(fx), MP_EINVAL);
    assert_non_null(strstr(mp_err_get(), "has no manifest.json"));
    put(fx->dir, MP_BACKUP_MANIFEST, "{\"format\": \"moonport-backup\", ");
    assert_int_equal(read_back(fx), MP_EINVAL);
}

static void unknown_schema(json_t *m)
{
    json_object_set_new(json_array_get(json_object_get(m, "schemas"), 1), "name", json_string("billing"));
}

static void twice(json_t *m)
{
    json_object_set_new(json_array_get(json_object_get(m, "schemas"), 1), "name", json_string("auth"));
}

static void outside(json_t *m)
{
    json_object_set_new(json_object_get(m, "files"), "../../etc/passwd",
                        json_pack("{s:i, s:s}", "bytes", 1, "sha256",
                                  "0000000000000000000000000000000000000000000000"
                                  "000000000000000000"));
}

static void newer_format(json_t *m)
{
    json_object_set_new(m, "format_version", json_integer(MP_BACKUP_FORMAT_VERSION + 1));
}

static void bad_since(json_t *m)
{
    json_object_set_new(json_array_get(json_object_get(m, "schemas"), 0), "events_since", json_string("now()"));
}

static void other_stream(json_t *m)
{
    json_object_set_new(json_object_get(m, "stream"), "name", json_string("OTHER"));
}

static void test_backup_manifest_refuses_what_this_build_cannot_restore(void **state)
{
    static const struct {
        void (*edit)(json_t *m);
        const char *says;
    } cases[] = {
        {unknown_schema, "schema \"billing\", which this build has no service for"},
        {twice, "lists schema \"auth\" twice"},
        {outside, "the entry for \"../../etc/passwd\" is malformed"},
        {newer_format, "this build reads version 1"},
        {bad_since, "the entry for schema \"auth\" is malformed"},
        {other_stream, "is not EVENTS"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        teardown(state); /* each case on a fresh folder */
        setup(state);
        fixture_t *fx = *state;
        edit_manifest(fx, cases[i].edit);
        assert_int_equal(read_back(fx), MP_EINVAL);
        if (strstr(mp_err_get(), cases[i].says) == NULL)
            fail_msg("case %zu: \"%s\" does not say \"%s\"", i, mp_err_get(), cases[i].says);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backup_manifest_names_stay_in_the_folder),
        cmocka_unit_test(test_backup_manifest_timestamps),
        cmocka_unit_test_setup_teardown(test_backup_manifest_reads_back_what_was_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_manifest_refuses_a_changed_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_manifest_refuses_a_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_manifest_refuses_a_folder_without_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_manifest_refuses_what_this_build_cannot_restore, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
