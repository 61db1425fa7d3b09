/*
 * sessions.c: a caller's sessions (list, revoke one) and the revocation feed
 * gateways read at start and every 30 s to catch any broadcast they missed.
 */
#include <stdio.h>
#include <string.h>
#include "mp/json.h"
#include "auth_int.h"

mp_status_t auth_sessions(mp_svc_req_t *req)
{
    mp_input_t in;
    mp_input_init(&in, req->input);
    mp_input_only(&in, MP_INPUT_FIELDS(NULL));
    if (!mp_input_ok(&in))
        return mp_input_reply(req, &in);
    mp_input_dispose(&in);
    if (req->auth_sub == NULL)
        return mp_err_set(MP_EUNAUTH, "sign in to list sessions");

    mp_db_res_t *res = NULL;
    mp_status_t st =
        mp_db_exec_once(&res, mp_svc_db(req->svc),
                        "SELECT id, " AUTH_TS("created_at") ", " AUTH_TS("last_used_at") ", " AUTH_TS(
                            "expires_at") " FROM auth.sessions "
                                          "WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() "
                                          "ORDER BY created_at DESC, id LIMIT 100",
                        1, MP_DB_PARAMS(req->auth_sub));
    if (st != MP_OK)
        return st;
    json_t *items = json_array();
    for (int i = 0; i < mp_db_rows(res); i++)
        json_array_append_new(items, json_pack("{s:s, s:s, s:s, s:s}", "id", mp_db_get(res, i, 0), "created_at",
                                               mp_db_get(res, i, 1), "last_used_at", mp_db_get(res, i, 2), "expires_at",
                                               mp_db_get(res, i, 3)));
    mp_db_res_free(res);
    return mp_svc_reply_json(req, 200, json_pack("{s:o, s:n}", "items", items, "next_cursor"));
}

mp_status_t auth_session_revoke(mp_svc_req_t *req)
{
    mp_input_t in;
    char id[37];
    mp_input_init(&in, req->input);
    mp_input_uuid(&in, "id", MP_IN_REQUIRED | MP_IN_PARAM, id);
    mp_input_only(&in, MP_INPUT_FIELDS("id"));
    if (!mp_input_ok(&in))
        return mp_input_reply(req, &in);
    mp_input_dispose(&in);
    if (req->auth_sub == NULL)
        return mp_err_set(MP_EUNAUTH, "sign in to revoke a session");

    mp_db_res_t *res = NULL;
    /* someone else's session is "not found": never confirm it exists */
    mp_status_t st =
        mp_db_exec_once(&res, mp_svc_db(req->svc),
                        "WITH s AS (SELECT id, revoked_at FROM auth.sessions WHERE id = $1 AND user_id = $2), "
                        "u AS (UPDATE auth.sessions SET revoked_at = now(), revoke_reason = 'user' "
                        "WHERE id IN (SELECT id FROM s WHERE revoked_at IS NULL) RETURNING id) "
                        "SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM u)",
                        2, MP_DB_PARAMS(id, req->auth_sub));
    if (st != MP_OK)
        return st;
    bool exists = strcmp(mp_db_get(res, 0, 0), "0") != 0, revoked = strcmp(mp_db_get(res, 0, 1), "0") != 0;
    mp_db_res_free(res);
    if (!exists)
        return mp_svc_reply_problem(req, 404, "no such session", NULL);
    if (revoked)
        auth_broadcast_revoked(mp_svc_bus(req->svc), id, req->auth_sub);
    return mp_svc_reply_json(req, 204, NULL);
}

mp_status_t auth_revocations(mp_svc_req_t *req)
{
    char ttl[24];
    mp_db_res_t *res = NULL;
    snprintf(ttl, sizeof(ttl), "%lld", (long long)auth_cfg.access_ttl_s + 60);
    mp_status_t st = mp_db_exec_once(&res, mp_svc_db(req->svc),
                                     "SELECT id, (extract(epoch FROM revoked_at) + $1::int)::bigint FROM auth.sessions "
                                     "WHERE revoked_at > now() - $1::int * interval '1 second'",
                                     1, MP_DB_PARAMS(ttl));
    if (st != MP_OK)
        return st;
    json_t *items = json_array();
    for (int i = 0; i < mp_db_rows(res); i++)
        json_array_append_new(items, json_pack("{s:s, s:I}", "session_id", mp_db_get(res, i, 0), "until",
                                               (json_int_t)atoll(mp_db_get(res, i, 1))));
    mp_db_res_free(res);
    return mp_svc_reply_json(req, 200, json_pack("{s:o}", "items", items));
}
