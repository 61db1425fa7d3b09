/*
 * stub_service.c: the one service-layer symbol core/input.c references
 * (mp_input_reply answers through mp_svc_reply_problem), for fuzz targets
 * that link input.c without the service runtime (bus, metrics, discovery).
 * No target replies, so it is never called: it aborts if one ever does.
 * Not a target itself (run.sh builds fuzz_*.c); listed in run.sh's sources.
 */
#include <stdlib.h>
#include "mp/service.h"

mp_status_t mp_svc_reply_problem(mp_svc_req_t *req, int status, const char *detail, mp_problem_errors_t *errors)
{
    abort();
}
