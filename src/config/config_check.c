/*
 * config_check.c - what happens after the whole file is read: defaults
 * for unset keys, the defaults computed from other settings (hostname,
 * postmaster, a listener's tls, [relay] helo_name and relayhost port)
 * and the rules that span sections or keys.
 *
 * Trusts the loader's record of which keys were set and on which line,
 * and that every value stored so far passed its own syntax and bounds.
 * Errors point at the line of the key involved, else at the section
 * header, else at the file.
 */
#include "config/config_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/xalloc.h"

/* Line a key was first set on, 0 when unset. */
static int key_line(const struct section_state *st, enum section_kind kind,
                    const char *name)
{
    int i = config_setting_index(config_section(kind), name);

    return i < 0 ? 0 : st->key_line[i];
}

static int key_or_header_line(const struct section_state *st,
                              enum section_kind kind, const char *name)
{
    int line = key_line(st, kind, name);

    return line ? line : st->header_line;
}

/* Required keys present; static defaults for every other unset key. */
static bool finish_section(struct loader *ld, enum section_kind kind,
                           const char *name, void *base,
                           const struct section_state *st)
{
    const struct section_def *def = config_section(kind);
    char label[CONFIG_LINE_MAX + 2];
    char msg[CONFIG_MSG_MAX];

    config_section_label(def, name, label, sizeof(label));
    for (size_t i = 0; i < def->count; i++) {
        const struct setting *s = &def->settings[i];
        if (st->key_line[i])
            continue;
        if (s->required)
            return loader_error(ld, st->header_line, "missing required key '%s' in %s",
                                s->name, label);
        if (s->def && !config_value_parse(s, base, s->def, ld->cfg, msg, sizeof(msg)))
            return loader_error(ld, 0, "bad built-in default: %s", msg);
    }
    return true;
}

static bool finish_sections(struct loader *ld)
{
    struct config *cfg = ld->cfg;

    if (cfg->listener_count == 0)
        return loader_error(ld, 0, "no [listener NAME] section; at least one is required");
    if (cfg->domain_count == 0)
        return loader_error(ld, 0, "no [domain NAME] section; at least one is required");
    if (!finish_section(ld, SECTION_SERVER, "", cfg, &ld->server) ||
        !finish_section(ld, SECTION_TLS, "", &cfg->tls, &ld->tls) ||
        !finish_section(ld, SECTION_QUEUE, "", &cfg->queue, &ld->queue) ||
        !finish_section(ld, SECTION_RELAY, "", &cfg->relay, &ld->relay) ||
        !finish_section(ld, SECTION_TLSRPT, "", &cfg->tlsrpt, &ld->tlsrpt) ||
        !finish_section(ld, SECTION_SUBMISSION, "", &cfg->submission, &ld->submission) ||
        !finish_section(ld, SECTION_METRICS, "", &cfg->metrics, &ld->metrics))
        return false;
    for (size_t i = 0; i < cfg->listener_count; i++)
        if (!finish_section(ld, SECTION_LISTENER, cfg->listeners[i].name,
                            &cfg->listeners[i], &ld->listeners[i]))
            return false;
    for (size_t i = 0; i < cfg->domain_count; i++)
        if (!finish_section(ld, SECTION_DOMAIN, cfg->domains[i].name,
                            &cfg->domains[i], &ld->domains[i]))
            return false;
    for (size_t i = 0; i < cfg->destination_count; i++)
        if (!finish_section(ld, SECTION_DESTINATION, cfg->destinations[i].name,
                            &cfg->destinations[i], &ld->destinations[i]))
            return false;
    for (size_t i = 0; i < cfg->milter_count; i++)
        if (!finish_section(ld, SECTION_MILTER, cfg->milters[i].name,
                            &cfg->milters[i], &ld->milters[i]))
            return false;
    return true;
}

static bool default_hostname(struct loader *ld)
{
    char host[sizeof(ld->cfg->hostname)];

    if (key_line(&ld->server, SECTION_SERVER, "hostname"))
        return true;
    if (ld->hostname)
        snprintf(host, sizeof(host), "%s", ld->hostname);
    else if (gethostname(host, sizeof(host)) != 0)
        host[0] = '\0';
    host[sizeof(host) - 1] = '\0';
    if (!config_valid_domain(host))
        return loader_error(ld, 0, "hostname is not set and the system host name "
                            "'%s' is not a valid domain name; set hostname in [server]",
                            host);
    snprintf(ld->cfg->hostname, sizeof(ld->cfg->hostname), "%s", host);
    return true;
}

/* Entries "local@domain" must name a local domain. */
static bool check_cleartext(struct loader *ld, size_t i, const char *label)
{
    const struct listener_config *l = &ld->cfg->listeners[i];

    for (size_t j = 0; j < l->cleartext_count; j++) {
        const char *at = strrchr(l->cleartext_recipients[j], '@');
        if (at && !config_find_domain(ld->cfg, at + 1))
            return loader_error(ld, key_or_header_line(&ld->listeners[i],
                                SECTION_LISTENER, "cleartext_recipients"),
                                "cleartext_recipients in %s: %s is not in a local domain",
                                label, l->cleartext_recipients[j]);
    }
    return true;
}

static bool finish_listener(struct loader *ld, size_t i)
{
    struct config *cfg = ld->cfg;
    struct listener_config *l = &cfg->listeners[i];
    const struct section_state *st = &ld->listeners[i];
    const struct section_def *def = config_section(SECTION_LISTENER);
    int tls_line = key_line(st, SECTION_LISTENER, "tls");
    char label[CONFIG_LINE_MAX + 2], mode[32];

    config_section_label(def, l->name, label, sizeof(label));
    if (l->address_count == 0)
        return loader_error(ld, key_or_header_line(st, SECTION_LISTENER, "address"),
                            "address in %s lists no address", label);
    if (!tls_line)
        l->tls = cfg->tls.cert_count > 0 ? LTLS_STARTTLS : LTLS_NONE;
    config_value_format(config_setting_find(def, "tls"), l, 0, mode, sizeof(mode));
    if (l->tls != LTLS_NONE && cfg->tls.cert_count == 0)
        return loader_error(ld, tls_line, "tls = %s in %s needs a certificate in [tls]",
                            mode, label);
    if (l->role == ROLE_SUBMISSION && l->tls == LTLS_NONE)
        return loader_error(ld, key_or_header_line(st, SECTION_LISTENER, "role"),
                            "role = submission in %s needs tls = starttls or implicit: "
                            "passwords are never taken in cleartext", label);
    if (l->role == ROLE_SUBMISSION && cfg->submission.users == NULL)
        return loader_error(ld, key_or_header_line(st, SECTION_LISTENER, "role"),
                            "role = submission in %s needs [submission] users = FILE "
                            "(user:crypt-hash lines)", label);
    if (l->require_tls && l->tls == LTLS_NONE)
        return loader_error(ld, key_line(st, SECTION_LISTENER, "require_tls"),
                            "require_tls = yes in %s needs tls = starttls or implicit%s",
                            label, tls_line ? ""
                            : " (tls is none by default when [tls] has no certificate)");
    return check_cleartext(ld, i, label);
}

static bool check_tls(struct loader *ld)
{
    const struct tls_config *tls = &ld->cfg->tls;

    if (tls->cert_count != tls->key_count)
        return loader_error(ld, ld->tls.header_line, "[tls] has %zu certificate(s) but "
                            "%zu private_key(s); they pair up in order",
                            tls->cert_count, tls->key_count);
    return true;
}

static bool resolve_postmaster(struct loader *ld)
{
    struct config *cfg = ld->cfg;
    int line = key_line(&ld->server, SECTION_SERVER, "postmaster");
    char buf[sizeof(cfg->domains[0].name) + 16];
    const char *at;

    if (!line) {
        snprintf(buf, sizeof(buf), "postmaster@%s", cfg->domains[0].name);
        cfg->postmaster = xstrdup(buf);
        return true;
    }
    at = strrchr(cfg->postmaster, '@');
    if (!at || !config_find_domain(cfg, at + 1))
        return loader_error(ld, line, "postmaster = %s is not in a local domain "
                            "(one with a [domain] section)", cfg->postmaster);
    return true;
}

/* After hostname: helo_name and the relayhost port default from other keys
 * (smtp_port may come after relayhost in the file). */
static bool finish_relay(struct loader *ld)
{
    struct config *cfg = ld->cfg;
    struct relay_config *rc = &cfg->relay;
    char warn[32], life[32];

    if (rc->relayhost_port == 0)
        rc->relayhost_port = rc->smtp_port;
    if (rc->relayhost == NULL && rc->relayhost_credentials != NULL)
        return loader_error(ld, key_line(&ld->relay, SECTION_RELAY, "relayhost_credentials"),
                            "relayhost_credentials needs a relayhost in [relay]");
    if (rc->relayhost == NULL && rc->relayhost_tls == RELAYHOST_TLS_IMPLICIT)
        return loader_error(ld, key_line(&ld->relay, SECTION_RELAY, "relayhost_tls"),
                            "relayhost_tls = implicit needs a relayhost in [relay]");
    for (size_t i = 0; i < cfg->destination_count; i++) {
        if (cfg->destinations[i].nexthop_port == 0)
            cfg->destinations[i].nexthop_port = rc->smtp_port;
        /* a [route D] with only a nexthop keeps the [relay] policy */
        if (!key_line(&ld->destinations[i], SECTION_DESTINATION, "security"))
            cfg->destinations[i].security = rc->security;
    }
    if (rc->relay_domain_count == 0 && rc->relay_recipients != NULL)
        return loader_error(ld, key_line(&ld->relay, SECTION_RELAY, "relay_recipients"),
                            "relay_recipients needs relay_domains in [relay]");
    for (size_t i = 0; i < rc->relay_domain_count; i++)
        if (config_find_domain(cfg, rc->relay_domains[i]))
            return loader_error(ld, key_line(&ld->relay, SECTION_RELAY, "relay_domains"),
                                "relay_domains: %s has a [domain] section: a domain is "
                                "either local or relayed", rc->relay_domains[i]);
    if (!key_line(&ld->relay, SECTION_RELAY, "helo_name"))
        snprintf(rc->helo_name, sizeof(rc->helo_name), "%s", cfg->hostname);
    if (rc->retry_count == 0)
        return loader_error(ld, key_or_header_line(&ld->relay, SECTION_RELAY, "retry"),
                            "retry in [relay] lists no interval");
    if (rc->bounce_after_warning != 0 &&
        rc->bounce_after_warning >= rc->max_queue_lifetime) {
        config_format_duration(rc->bounce_after_warning, warn, sizeof(warn));
        config_format_duration(rc->max_queue_lifetime, life, sizeof(life));
        return loader_error(ld, key_line(&ld->relay, SECTION_RELAY,
                                         "bounce_after_warning"),
                            "bounce_after_warning = %s must be shorter than "
                            "max_queue_lifetime (%s), or no warning is ever sent; "
                            "0 turns warnings off", warn, life);
    }
    return true;
}

/* security = fingerprint needs digests, and digests need that policy. */
static bool check_fingerprints(struct loader *ld)
{
    const struct config *cfg = ld->cfg;

    if (cfg->relay.security == TLS_SEC_FINGERPRINT)
        return loader_error(ld, key_line(&ld->relay, SECTION_RELAY, "security"),
                            "security = fingerprint is for a [destination NAME] section "
                            "with its fingerprints, not for [relay]");
    for (size_t i = 0; i < cfg->destination_count; i++) {
        const struct destination_config *d = &cfg->destinations[i];
        const struct section_state *st = &ld->destinations[i];

        if (d->security == TLS_SEC_FINGERPRINT && d->fingerprint_count == 0)
            return loader_error(ld, key_line(st, SECTION_DESTINATION, "security"),
                                "security = fingerprint in [destination %s] needs "
                                "fingerprints = SHA256-HEX[, ...]", d->name);
        if (d->security != TLS_SEC_FINGERPRINT && d->fingerprint_count > 0)
            return loader_error(ld, key_line(st, SECTION_DESTINATION, "fingerprints"),
                                "fingerprints in [destination %s] are used only with "
                                "security = fingerprint", d->name);
    }
    return true;
}

/* [domain] owner defaults to the queue user (which may come later in
 * the file). */
static void default_owners(struct loader *ld)
{
    struct config *cfg = ld->cfg;

    for (size_t i = 0; i < cfg->domain_count; i++) {
        struct domain_config *d = &cfg->domains[i];

        if (!key_line(&ld->domains[i], SECTION_DOMAIN, "owner"))
            snprintf(d->owner, sizeof(d->owner), "%s", cfg->queue_user);
    }
}

/* A Maildir domain needs its template; every lmtp:unix: socket lives in
 * one folder (the LMTP process is chrooted there, docs/SECURITY.md). */
static bool check_domains(struct loader *ld)
{
    const struct config *cfg = ld->cfg;
    char dir[LMTP_TARGET_MAX];

    config_lmtp_socket_dir(cfg, dir, sizeof(dir));
    for (size_t i = 0; i < cfg->domain_count; i++) {
        const struct domain_config *d = &cfg->domains[i];
        struct lmtp_target t;

        if (!config_lmtp_target(d, &t)) {
            if (d->maildir == NULL)
                return loader_error(ld, ld->domains[i].header_line, "missing required key "
                                    "'maildir' in [domain %s]",
                                    d->name);
            continue;
        }
        if (t.unix_socket && (strncmp(t.path, dir, strlen(dir)) != 0 ||
                              strchr(t.path + strlen(dir) + 1, '/') != NULL))
            return loader_error(ld, ld->domains[i].header_line, "[domain %s] deliver = %s: "
                                "every lmtp:unix: socket must be in one folder (here %s)",
                                d->name, d->deliver, dir);
    }
    return true;
}

/* Every milter a listener names exists; every unix: milter socket lives
 * in one folder (the milter role is chrooted there, docs/SECURITY.md). */
static bool check_milters(struct loader *ld)
{
    const struct config *cfg = ld->cfg;
    char dir[LMTP_TARGET_MAX], err[200];

    for (size_t i = 0; i < cfg->listener_count; i++) {
        const struct listener_config *l = &cfg->listeners[i];

        for (size_t k = 0; k < l->milter_count; k++)
            if (config_find_milter(cfg, l->milters[k]) == NULL)
                return loader_error(ld, key_line(&ld->listeners[i], SECTION_LISTENER,
                                                 "milters"),
                                    "[listener %s] milters: no section [milter %s]",
                                    l->name, l->milters[k]);
    }
    for (size_t k = 0; k < cfg->queue.sendmail_milter_count; k++) {
        const struct milter_config *m = config_find_milter(cfg, cfg->queue.sendmail_milters[k]);

        if (m == NULL || m->stage != MILTER_AT_DATA)
            return loader_error(ld, key_line(&ld->queue, SECTION_QUEUE, "sendmail_milters"),
                                m ? "[queue] sendmail_milters: [milter %s] must have stage = "
                                    "data (local mail has no SMTP commands)"
                                  : "[queue] sendmail_milters: no section [milter %s]",
                                cfg->queue.sendmail_milters[k]);
    }
    config_milter_socket_dir(cfg, dir, sizeof(dir));
    for (size_t i = 0; i < cfg->milter_count; i++) {
        const struct milter_config *m = &cfg->milters[i];
        struct lmtp_target t;

        if (config_parse_milter_socket(m->socket, &t, err, sizeof(err)) && t.unix_socket &&
            (strncmp(t.path, dir, strlen(dir)) != 0 ||
             strchr(t.path + strlen(dir) + 1, '/') != NULL))
            return loader_error(ld, ld->milters[i].header_line, "[milter %s] socket = %s: "
                                "every unix: milter socket must be in one folder (here %s)",
                                m->name, m->socket, dir);
    }
    return true;
}

/* [tlsrpt] organization defaults to the hostname. */
static bool finish_tlsrpt(struct loader *ld)
{
    struct tlsrpt_config *tc = &ld->cfg->tlsrpt;

    if (!key_line(&ld->tlsrpt, SECTION_TLSRPT, "organization"))
        snprintf(tc->organization, sizeof(tc->organization), "%s", ld->cfg->hostname);
    return true;
}

bool config_finish(struct loader *ld)
{
    if (!finish_sections(ld) || !check_tls(ld) || !default_hostname(ld) ||
        !resolve_postmaster(ld) || !finish_relay(ld) || !check_fingerprints(ld) ||
        !finish_tlsrpt(ld) || !check_domains(ld) || !check_milters(ld))
        return false;
    default_owners(ld);
    for (size_t i = 0; i < ld->cfg->listener_count; i++)
        if (!finish_listener(ld, i))
            return false;
    return true;
}
