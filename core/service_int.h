/*
 * service_int.h: what service.c (dispatch and replies), service_discovery.c
 * ($SRV protocol) and serve.c (process lifecycle) share about a running
 * service. Not part of the public API.
 */
#ifndef MP_SERVICE_INT_H
#define MP_SERVICE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include "mp/bus_serve.h"
#include "mp/metrics.h"
#include "mp/service.h"

typedef struct mp_ep_stats {
    struct mp_svc *svc;
    const mp_endpoint_t *ep;
    char subject[128];
    _Atomic uint64_t requests, errors, nanos;
    pthread_mutex_t mu;
    char last_error[256];
    mp_series_t *duration; /* moonport_nats_request_duration_seconds{subject} */
} mp_ep_stats_t;

struct mp_svc {
    const mp_service_def_t *def;
    mp_cfg_t *cfg;
    mp_yaml_doc_t *descriptor;
    const char *version;
    const char *description;
    mp_bus_t *bus;
    mp_db_t *db;
    mp_cache_t *cache;
    mp_bus_server_t *server;
    void *state;
    char id[24];
    char started[32]; /* RFC 3339 */
    mp_ep_stats_t *stats;
    size_t nstats;
    _Atomic int stopping;
    int running; /* its role was started in this process */
    struct {
        struct mp_svc *svc;
        const char *verb;
    } discovery[3]; /* the $SRV handlers' arguments: PING, INFO, STATS */
    /* settings from services.<name>.* */
    int workers;
    int fibers;     /* requests each worker serves at once; 0: one, blocking */
    bool nats_loop; /* each worker owns its NATS connection (needs fibers) */
    int max_queue;
    const char *postgres_dsn;
    int db_pool;
};

/** Parses the embedded descriptor and checks it against the endpoints (each op described, each description served).
 *  Errors: MP_EINVAL with the problem. */
mp_status_t mp_svc__load_descriptor(mp_svc_t *svc);

/** Subscribes every endpoint in the service's queue group on its worker pool. */
mp_status_t mp_svc__subscribe(mp_svc_t *svc);

/** Subscribes the $SRV discovery subjects for this instance. */
mp_status_t mp_svc__discovery_subscribe(mp_svc_t *svc);

/** Renders the $SRV INFO / STATS / PING body for this instance. */
void mp_svc__discovery_render(mp_svc_t *svc, const char *verb, mp_buf_t *out);

#endif
