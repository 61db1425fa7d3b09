/*
 * fuzz_json.c: libFuzzer target for mp_json_parse(), mp_json_depth_ok(),
 * mp_json_dump() and mp_json_compact().
 *
 * Every input goes through the raw depth scan and the strict parser. A value
 * that parses must dump to text that parses again to an equal value (the
 * dump is what services send on), must stay within the depth limit, and the
 * raw scan must agree with the parser: whatever the parser accepted was not
 * refused as too deep. Compacting any bytes stays within them, and compacted
 * JSON parses to the same value. Aborts on any broken property; the sanitizers catch
 * the rest. Seeds: tests/fuzz/corpus/json/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "mp/json.h"

static void die(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_json: %s (input %zu bytes)\n", what, size);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    json_t *v = NULL, *again = NULL;
    bool depth_ok = mp_json_depth_ok(text, size, MP_JSON_MAX_DEPTH);

    (void)mp_json_depth_ok(text, size, 0);   /* any limit, any bytes: must not crash */
    char *compact = malloc(size ? size : 1); /* exactly the input's size: ASan sees any write past it */
    size_t clen = mp_json_compact(compact, text, size);
    if (clen > size)
        die("compacting made the text longer", data, size);
    if (mp_json_parse(&v, text, size) != MP_OK) {
        free(compact);
        return 0;
    }
    if (mp_json_parse(&again, compact, clen) != MP_OK || !json_equal(v, again))
        die("the compacted text is another value", data, size);
    json_decref(again);
    again = NULL;
    free(compact);
    if (!depth_ok)
        die("parsed although the depth scan refused it", data, size);

    mp_buf_t out = MP_BUF_INIT;
    mp_json_dump(&out, v);
    if (out.base == NULL)
        die("dump produced nothing", data, size);
    if (!mp_json_depth_ok(out.base, out.len, MP_JSON_MAX_DEPTH))
        die("dump nests deeper than the input", data, size);
    if (mp_json_parse(&again, out.base, out.len) != MP_OK) {
        fprintf(stderr, "re-parse of \"%s\": %s\n", out.base, mp_err_get());
        die("dump does not parse", data, size);
    }
    if (!json_equal(v, again))
        die("dump parses to a different value", data, size);
    mp_buf_dispose(&out);
    json_decref(again);
    json_decref(v);
    return 0;
}
