/*
 * adapter_webhook.c: delivers each notification as an HTTP POST of its JSON
 * to notification.webhook_url, signed so the receiver can tell it came from
 * us and was not changed on the way:
 *
 *     X-Moonport-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>
 *     X-Moonport-Notification-Id: <id>   (the same on every retry: de-duplicate by it)
 *
 * The secret comes from mp_cfg_secret("notification.webhook_secret"): the
 * variable MOONPORT_NOTIFICATION_WEBHOOK_SECRET or a file named by
 * notification.webhook_secret_file. A 2xx answer is delivered; anything else
 * (or no answer within notification.webhook_timeout) is a failed attempt,
 * retried by deliver.c.
 */
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "http_post.h"
#include "adapter.h"

static const char *url_text;
static http_url_t url;
static int timeout_ms;
static char *secret;

static void webhook_configure(mp_cfg_t *cfg, bool chosen)
{
    url_text = mp_cfg_str(cfg, "notification.webhook_url", NULL);
    timeout_ms = (int)mp_cfg_duration_ms(cfg, "notification.webhook_timeout", 5000, 100, 60000);
    /* read once now so a missing or unreadable secret stops start-up with the other errors; init reads it again */
    char *s = mp_cfg_secret(cfg, "notification.webhook_secret");
    if (chosen && url_text == NULL)
        mp_cfg_error_at(cfg, NULL, "notification.webhook_url is required with the webhook adapter");
    else if (chosen && http_url_parse(&url, url_text) != MP_OK)
        mp_cfg_error_at(cfg, NULL, "notification.webhook_url: %s", mp_err_get());
    if (chosen && (s == NULL || strlen(s) < 16))
        mp_cfg_error_at(cfg, NULL,
                        "the webhook adapter needs a secret of 16 characters or more: set "
                        "MOONPORT_NOTIFICATION_WEBHOOK_SECRET or notification.webhook_secret_file");
    mp_cfg_secret_free(s);
}

static mp_status_t webhook_init(mp_cfg_t *cfg)
{
    secret = mp_cfg_secret(cfg, "notification.webhook_secret");
    if (secret == NULL)
        return mp_err_set(MP_EINVAL, "notification.webhook_secret is not set");
    return http_url_parse(&url, url_text);
}

static void webhook_fini(void)
{
    mp_cfg_secret_free(secret);
    secret = NULL;
}

static mp_status_t webhook_send(const notif_message_t *m)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    char sig[32 + 2 * EVP_MAX_MD_SIZE], idh[96];
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)m->json, m->len, mac, &maclen);
    int n = snprintf(sig, sizeof(sig), "X-Moonport-Signature: sha256=");
    for (unsigned int i = 0; i < maclen; i++)
        n += snprintf(sig + n, sizeof(sig) - (size_t)n, "%02x", mac[i]);
    snprintf(idh, sizeof(idh), "X-Moonport-Notification-Id: %s", m->id);
    const char *headers[] = {sig, idh, NULL};
    int status = 0;
    mp_status_t st = http_post(&status, &url, headers, m->json, m->len, timeout_ms);
    if (st != MP_OK)
        return st;
    if (status < 200 || status > 299)
        return mp_err_set(MP_EBADREPLY, "the webhook answered HTTP %d", status);
    return MP_OK;
}

const notif_adapter_t notif_adapter_webhook = {.name = "webhook",
                                               .configure = webhook_configure,
                                               .init = webhook_init,
                                               .fini = webhook_fini,
                                               .send = webhook_send};
