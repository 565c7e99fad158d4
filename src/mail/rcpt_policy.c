/*
 * rcpt_policy.c - recipient decisions shared by the worker and the queue
 * (see rcpt_policy.h).
 */
#include "mail/rcpt_policy.h"

#include <stdio.h>
#include <string.h>

#include "mail/relay_recipients.h"
#include "mail/senders.h"
#include "mail/tls_policy.h"
#include "util/ascii.h"
#include "util/cidr.h"

bool rcpt_context_cleartext(const struct rcpt_context *c)
{
    return c->listener->require_tls && !c->tls;
}

/* An accepted local recipient: its alias expansion must work. */
static enum rcpt_decision alias_decide(const struct rcpt_context *c, const struct mailbox *to)
{
    struct recipient_expansion ex = { .max = c->cfg->max_alias_recipients };
    char addr[ADDR_PATH_MAX + 1];
    enum expand_result r;

    if (to->is_bare_postmaster)
        return RCPT_ACCEPT;
    mailbox_format_canonical(to, addr, sizeof(addr));
    r = recipient_expand(c->recipients, addr, &ex);
    recipient_expansion_clear(&ex);
    switch (r) {
    case EXPAND_OK:         return RCPT_ACCEPT;
    case EXPAND_LOOP:
    case EXPAND_TOO_DEEP:   return RCPT_ALIAS_LOOP;
    case EXPAND_TOO_MANY:   return RCPT_ALIAS_TOO_MANY;
    case EXPAND_UNKNOWN:    break;
    }
    return RCPT_UNKNOWN_USER;
}

static bool relay_domain(const struct rcpt_context *c, const struct mailbox *to)
{
    char lower[ADDR_DOMAIN_MAX + 1];

    if (to->domain_is_literal || to->is_bare_postmaster)
        return false;
    ascii_lower_copy(lower, sizeof(lower), to->domain, strlen(to->domain));
    return config_is_relay_domain(c->cfg, lower);
}

/* A recipient in a relay domain: listed, or no list configured. */
static bool relay_listed(const struct rcpt_context *c, const struct mailbox *to)
{
    const struct relay_recipients *list = recipient_policy_relay(c->recipients);

    return list == NULL || relay_recipients_allows(list, to);
}

enum rcpt_decision rcpt_policy_decide(const struct rcpt_context *c, const struct mailbox *to)
{
    const struct relay_config *rc = &c->cfg->relay;

    if (rcpt_context_cleartext(c) && !tls_policy_cleartext_allowed(c->listener, to))
        return RCPT_TLS_REQUIRED;
    switch (recipient_check(c->recipients, to)) {
    case VERDICT_ACCEPT:
        return alias_decide(c, to);
    case VERDICT_UNKNOWN_USER:
        return RCPT_UNKNOWN_USER;
    case VERDICT_RELAY_DENIED:
        break;
    }
    if (relay_domain(c, to))            /* [relay] relay_domains: forwarded, from
                                           any client, if relay_recipients lists it */
        return relay_listed(c, to) ? RCPT_ACCEPT : RCPT_UNKNOWN_RELAY_USER;
    if (c->auth_user != NULL)
        return RCPT_ACCEPT;             /* authenticated submission may relay */
    return cidr_match_text(rc->networks, rc->network_count, c->client_ip) ? RCPT_ACCEPT
                                                                          : RCPT_RELAY_DENIED;
}

const char *rcpt_decision_name(enum rcpt_decision d)
{
    switch (d) {
    case RCPT_ACCEPT:       return "accepted";
    case RCPT_TLS_REQUIRED: return "tls_required";
    case RCPT_UNKNOWN_USER: return "unknown_user";
    case RCPT_RELAY_DENIED: return "relay_denied";
    case RCPT_ALIAS_LOOP:   return "alias_loop";
    case RCPT_ALIAS_TOO_MANY: return "alias_too_many";
    case RCPT_UNKNOWN_RELAY_USER: return "unknown_relay_user";
    }
    return "?";
}

/* Parse a stored "local@domain" back into a mailbox. */
static bool parse_stored(const char *addr, bool utf8, struct mailbox *mb)
{
    char path[ADDR_PATH_MAX + 3];
    size_t consumed = 0;
    int n = snprintf(path, sizeof(path), "<%s>", addr);

    return n > 0 && (size_t)n < sizeof(path) &&
           address_parse_path(path, (size_t)n, utf8, mb, &consumed) == ADDR_OK &&
           consumed == (size_t)n && !mb->is_null;
}

bool rcpt_policy_check_envelope(const struct rcpt_context *c, const struct envelope *env,
                                char *why, size_t whysize)
{
    bool cleartext = rcpt_context_cleartext(c);

    if (env->rcpt_count == 0 || env->rcpt_count > c->cfg->max_recipients) {
        snprintf(why, whysize, "%zu recipients", env->rcpt_count);
        return false;
    }
    if (env->requiretls && !c->tls) {
        snprintf(why, whysize, "REQUIRETLS without TLS");
        return false;
    }
    if (cleartext && !env->dsn_content_withheld) {
        snprintf(why, whysize, "cleartext transaction not marked dsn_content none");
        return false;
    }
    if (!rcpt_policy_sender_allowed(c, env->from)) {
        snprintf(why, whysize, "sender not allowed for the authenticated user");
        return false;
    }
    for (size_t i = 0; i < env->rcpt_count; i++) {
        const struct envelope_rcpt *r = &env->rcpts[i];
        struct mailbox mb;
        enum rcpt_decision d;

        if (!parse_stored(r->addr, env->smtputf8, &mb)) {
            snprintf(why, whysize, "recipient %zu is not an address", i);
            return false;
        }
        if (cleartext && (r->notify & (DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY))) {
            snprintf(why, whysize, "recipient %zu asks for notices in cleartext", i);
            return false;
        }
        if ((d = rcpt_policy_decide(c, &mb)) != RCPT_ACCEPT) {
            snprintf(why, whysize, "recipient %zu: %s", i, rcpt_decision_name(d));
            return false;
        }
    }
    return true;
}

bool rcpt_policy_sender_allowed(const struct rcpt_context *c, const char *from)
{
    if (c->auth_user == NULL)
        return true;
    return sender_map_allows(recipient_policy_senders(c->recipients), c->auth_user, from);
}
