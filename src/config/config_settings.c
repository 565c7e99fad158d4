/*
 * config_settings.c - the table of every setting: section, name, type,
 * bounds, default and where it is stored. Adding a setting is one row
 * here, one field in config.h and one line in docs/CONFIGURATION.md.
 *
 * Trusts nothing: this file is data plus lookups by exact name.
 */
#include "config/config_internal.h"

#include <limits.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <string.h>

#include "util/ascii.h"
#include "util/log.h"

#define MINUTE 60ULL
#define HOUR (60 * MINUTE)
#define DAY (24 * HOUR)

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)

#define SRV(field) offsetof(struct config, field)
#define LIS(field) offsetof(struct listener_config, field)
#define DOM(field) offsetof(struct domain_config, field)
#define TLS(field) offsetof(struct tls_config, field)
#define QUE(field) offsetof(struct queue_config, field)
#define REL(field) offsetof(struct relay_config, field)
#define DST(field) offsetof(struct destination_config, field)
#define RPT(field) offsetof(struct tlsrpt_config, field)
#define SUB(field) offsetof(struct submission_config, field)
#define MET(field) offsetof(struct metrics_config, field)
#define MIL(field) offsetof(struct milter_config, field)
#define FIELD_SIZE(type, field) sizeof(((type *)0)->field)

_Static_assert(sizeof(enum listener_role) == sizeof(int), "enum stored as int");
_Static_assert(sizeof(enum listener_tls) == sizeof(int), "enum stored as int");

static const struct enum_name log_levels[] = {
    { "debug", LOG_LEVEL_DEBUG }, { "info", LOG_LEVEL_INFO },
    { "warn", LOG_LEVEL_WARN },   { "error", LOG_LEVEL_ERROR },
    { NULL, 0 },
};

static const struct enum_name roles[] = {
    { "mx", ROLE_MX }, { "submission", ROLE_SUBMISSION }, { NULL, 0 },
};

static const struct enum_name tls_modes[] = {
    { "none", LTLS_NONE }, { "starttls", LTLS_STARTTLS },
    { "implicit", LTLS_IMPLICIT }, { NULL, 0 },
};

static const struct enum_name securities[] = {
    { "dane-or-sts", TLS_SEC_DANE_OR_STS }, { "none", TLS_SEC_NONE },
    { "may", TLS_SEC_MAY }, { "encrypt", TLS_SEC_ENCRYPT }, { "verify", TLS_SEC_VERIFY },
    { "dane", TLS_SEC_DANE }, { "dane-only", TLS_SEC_DANE_ONLY },
    { "fingerprint", TLS_SEC_FINGERPRINT }, { NULL, 0 },
};

static const struct enum_name relayhost_tls_modes[] = {
    { "starttls", RELAYHOST_TLS_STARTTLS }, { "implicit", RELAYHOST_TLS_IMPLICIT },
    { NULL, 0 },
};

static const struct enum_name milter_actions[] = {
    { "tempfail", MILTER_ACTION_TEMPFAIL }, { "accept", MILTER_ACTION_ACCEPT },
    { "reject", MILTER_ACTION_REJECT }, { NULL, 0 },
};

static const struct enum_name milter_stages[] = {
    { "data", MILTER_AT_DATA }, { "connect", MILTER_AT_CONNECT }, { "mail", MILTER_AT_MAIL },
    { "rcpt", MILTER_AT_RCPT }, { NULL, 0 },
};

static const struct enum_name tls_versions[] = {
    { "TLSv1.2", TLS1_2_VERSION }, { "TLSv1.3", TLS1_3_VERSION }, { NULL, 0 },
};

static const struct setting server_settings[] = {
    { "hostname", ST_HOSTNAME, SRV(hostname), 0, 0,
      FIELD_SIZE(struct config, hostname) - 1, NULL, false, NULL },
    { "spool", ST_PATH, SRV(spool), 0, 0, 0, "/var/spool/sealpost", false, NULL },
    { "postmaster", ST_MAILBOX, SRV(postmaster), 0, 0, 0, NULL, false, NULL },
    { "max_message_size", ST_BYTES, SRV(max_message_size), 0,
      KIB, 2 * GIB, "50M", false, NULL },
    { "max_recipients", ST_UINT, SRV(max_recipients), 0, 1, 100000, "100", false, NULL },
    { "max_errors", ST_UINT, SRV(max_errors), 0, 1, 1000, "10", false, NULL },
    { "max_line_length", ST_SIZE, SRV(max_line_length), 0, 512, CONFIG_MAX_LINE_LENGTH, "2048", false, NULL },
    { "max_text_line_length", ST_SIZE, SRV(max_text_line_length), 0,
      1000, 1048576, "1000", false, NULL },
    { "max_output_buffer", ST_BYTES, SRV(max_output_buffer), 0,
      16 * KIB, 64 * MIB, "256k", false, NULL },
    { "command_timeout", ST_SECONDS, SRV(command_timeout), 0, 1, 3600, "5m", false, NULL },
    { "data_timeout", ST_SECONDS, SRV(data_timeout), 0, 1, 3600, "5m", false, NULL },
    { "close_timeout", ST_SECONDS, SRV(close_timeout), 0, 1, 60, "5s", false, NULL },
    { "max_connections", ST_UINT, SRV(max_connections), 0, 1, 100000, "1000", false, NULL },
    { "max_connections_per_ip", ST_UINT, SRV(max_connections_per_ip), 0,
      1, 100000, "50", false, NULL },
    { "per_ip_ipv6_prefix", ST_UINT, SRV(per_ip_ipv6_prefix), 0, 32, 128, "64", false, NULL },
    { "shutdown_timeout", ST_SECONDS, SRV(shutdown_timeout), 0, 0, 600, "10s", false, NULL },
    { "delivery_retry", ST_SECONDS, SRV(delivery_retry), 0, 1, 86400, "60s", false, NULL },
    { "log_level", ST_ENUM, SRV(log_level), 0, 0, 0, "info", false, log_levels },
    { "log", ST_LOG_TARGET, SRV(log), 0, 0, 0, "stderr", false, NULL },
    { "syslog_socket", ST_PATH, SRV(syslog_socket), 0, 0, 0, "/dev/log", false, NULL },
    { "user", ST_USERNAME, SRV(user), 0, 0, FIELD_SIZE(struct config, user) - 1,
      "sealpost", false, NULL },
    { "queue_user", ST_USERNAME, SRV(queue_user), 0, 0,
      FIELD_SIZE(struct config, queue_user) - 1, "sealpost-queue", false, NULL },
    { "delivery_user", ST_USERNAME, SRV(delivery_user), 0, 0,
      FIELD_SIZE(struct config, delivery_user) - 1, "sealpost-delivery", false, NULL },
    { "workers", ST_UINT, SRV(workers), 0, 0, 64, "0", false, NULL },
    /* milter role processes (README "Milters"), each asks for one message
     * or command at a time */
    { "milter_processes", ST_UINT, SRV(milter_processes), 0, 1, CONFIG_MAX_MILTER_PROCS, "2",
      false, NULL },
    /* aliases (mail/alias.h): at most ENVELOPE_MAX_RCPTS */
    { "max_alias_recipients", ST_UINT, SRV(max_alias_recipients), 0, 1, 100000, "1000",
      false, NULL },
};

static const struct setting listener_settings[] = {
    { "address", ST_ADDRESSES, LIS(addresses), LIS(address_count),
      0, CONFIG_MAX_ADDRESSES, NULL, true, NULL },
    { "role", ST_ENUM, LIS(role), 0, 0, 0, "mx", false, roles },
    /* default computed: starttls when [tls] has a certificate */
    { "tls", ST_ENUM, LIS(tls), 0, 0, 0, NULL, false, tls_modes },
    { "require_tls", ST_BOOL, LIS(require_tls), 0, 0, 0, "no", false, NULL },
    { "cleartext_recipients", ST_RECIPIENTS, LIS(cleartext_recipients),
      LIS(cleartext_count), 0, CONFIG_MAX_CLEARTEXT, "postmaster, abuse", false, NULL },
    { "milters", ST_NAMES, LIS(milters), LIS(milter_count), 0, CONFIG_MAX_MILTERS, NULL,
      false, NULL },
};

/* [milter NAME] (README "Milters") */
static const struct setting milter_settings[] = {
    { "socket", ST_MILTER_SOCKET, MIL(socket), 0, 0, 0, NULL, true, NULL },
    { "default_action", ST_ENUM, MIL(default_action), 0, 0, 0, "tempfail", false,
      milter_actions },
    { "timeout", ST_SECONDS, MIL(timeout), 0, 1, 3600, "30s", false, NULL },
    { "stage", ST_ENUM, MIL(stage), 0, 0, 0, "data", false, milter_stages },
};

static const struct setting domain_settings[] = {
    { "mailboxes", ST_FILE, DOM(mailboxes_file), 0, 0, 0, NULL, false, NULL },
    /* required unless deliver = lmtp:... (config_check.c check_domains) */
    { "maildir", ST_TEMPLATE, DOM(maildir), 0, 0, 0, NULL, false, NULL },
    /* default computed: [server] queue_user */
    { "owner", ST_USERNAME, DOM(owner), 0, 0,
      FIELD_SIZE(struct domain_config, owner) - 1, NULL, false, NULL },
    { "aliases", ST_FILE, DOM(aliases_file), 0, 0, 0, NULL, false, NULL },
    /* LMTP delivery (RFC 2033) */
    { "deliver", ST_DELIVER, DOM(deliver), 0, 0, 0, NULL, false, NULL },
    { "lmtp_timeout", ST_SECONDS, DOM(lmtp_timeout), 0, 1, 3600, "5m", false, NULL },
};

static const struct setting tls_settings[] = {
    { "certificate", ST_PATHS, TLS(certificates), TLS(cert_count),
      0, CONFIG_MAX_CERTS, NULL, false, NULL },
    { "private_key", ST_PATHS, TLS(private_keys), TLS(key_count),
      0, CONFIG_MAX_CERTS, NULL, false, NULL },
    { "min_version", ST_ENUM, TLS(min_version), 0, 0, 0, "TLSv1.2", false, tls_versions },
};

static const struct setting queue_settings[] = {
    { "hold", ST_BOOL, QUE(hold), 0, 0, 0, "no", false, NULL },
    { "sendmail_milters", ST_NAMES, QUE(sendmail_milters), QUE(sendmail_milter_count), 0,
      CONFIG_MAX_MILTERS, NULL, false, NULL },
};

/* Durations are stored as unsigned seconds. */
_Static_assert(100 * DAY <= UINT_MAX, "durations fit an unsigned");

static const struct setting relay_settings[] = {
    /* empty by default: nobody may relay */
    { "trusted_networks", ST_NETWORKS, REL(networks), REL(network_count),
      0, CONFIG_MAX_NETWORKS, NULL, false, NULL },
    { "smtp_port", ST_UINT, REL(smtp_port), 0, 1, 65535, "25", false, NULL },
    /* relayhost_port defaults to smtp_port, resolved in config_check.c */
    { "relayhost", ST_NEXTHOP, REL(relayhost), REL(relayhost_port),
      0, 0, NULL, false, NULL },
    { "resolver", ST_RESOLVER, REL(resolver), 0, 0, 0, NULL, false, NULL },
    { "trust_anchor", ST_FILE, REL(trust_anchor), 0, 0, 0, NULL, false, NULL },
    { "unbound_config", ST_FILE, REL(unbound_config), 0, 0, 0, NULL, false, NULL },
    /* default computed: [server] hostname */
    { "helo_name", ST_HOSTNAME, REL(helo_name), 0, 0,
      FIELD_SIZE(struct relay_config, helo_name) - 1, NULL, false, NULL },
    { "retry", ST_DURATIONS, REL(retry), REL(retry_count), 1, 7 * DAY,
      "5m 10m 20m 40m 1h", false, NULL },
    { "max_queue_lifetime", ST_SECONDS, REL(max_queue_lifetime), 0, 1, 100 * DAY,
      "5d", false, NULL },
    { "bounce_lifetime", ST_SECONDS, REL(bounce_lifetime), 0, 1, 100 * DAY,
      "5d", false, NULL },
    { "bounce_after_warning", ST_SECONDS, REL(bounce_after_warning), 0, 0, 100 * DAY,
      "0", false, NULL },
    { "destination_concurrency", ST_UINT, REL(destination_concurrency), 0,
      1, 1000, "20", false, NULL },
    { "max_outbound_connections", ST_UINT, REL(max_outbound_connections), 0,
      1, 100000, "200", false, NULL },
    { "connect_timeout", ST_SECONDS, REL(connect_timeout), 0, 1, 10 * MINUTE,
      "30s", false, NULL },
    /* 0: the RFC 5321 4.5.3.2 timeouts per command */
    { "smtp_timeout", ST_SECONDS, REL(smtp_timeout), 0, 0, HOUR, "0", false, NULL },
    { "dns_timeout", ST_SECONDS, REL(dns_timeout), 0, 1, 10 * MINUTE,
      "30s", false, NULL },
    { "security", ST_ENUM, REL(security), 0, 0, 0, "dane-or-sts", false, securities },
    /* MTA-STS (RFC 8461): the CA file the policy host and the MX hosts of
     * an STS policy are verified against (NULL: the system bundle), the
     * whole-fetch deadline, and the policy host's port (443; for tests). */
    { "ca_file", ST_FILE, REL(ca_file), 0, 0, 0, NULL, false, NULL },
    { "mta_sts_timeout", ST_SECONDS, REL(mta_sts_timeout), 0, 1, 10 * MINUTE,
      "30s", false, NULL },
    { "mta_sts_port", ST_UINT, REL(mta_sts_port), 0, 1, 65535, "443", false, NULL },
    /* Smart host AUTH (RFC 4954): implicit TLS (RFC 8314) or STARTTLS to
     * the relayhost, and its "user:password" file (0600/0400; checked and
     * read by the master, master/master_files.c). Both need relayhost. */
    { "relayhost_tls", ST_ENUM, REL(relayhost_tls), 0, 0, 0, "starttls", false,
      relayhost_tls_modes },
    { "relayhost_credentials", ST_FILE, REL(relayhost_credentials), 0, 0, 0, NULL, false,
      NULL },
    /* accepted and forwarded, never local; empty by default */
    { "relay_domains", ST_DOMAINS, REL(relay_domains), REL(relay_domain_count),
      0, CONFIG_MAX_RELAY_DOMAINS, NULL, false, NULL },
    /* the recipients of relay_domains (Postfix relay_recipient_maps); read
     * by the master with the mailbox lists (mail/recipient.c) */
    { "relay_recipients", ST_FILE, REL(relay_recipients), 0, 0, 0, NULL, false, NULL },
};

static const struct setting destination_settings[] = {
    /* default computed: [relay] security (config_check.c) */
    { "security", ST_ENUM, DST(security), 0, 0, 0, NULL, false, securities },
    { "ca_file", ST_FILE, DST(ca_file), 0, 0, 0, NULL, false, NULL },
    { "fingerprints", ST_FINGERPRINTS, DST(fingerprints), DST(fingerprint_count), 0,
      CONFIG_MAX_FINGERPRINTS, NULL, false, NULL },
    /* nexthop_port defaults to [relay] smtp_port, resolved in config_check.c */
    { "nexthop", ST_NEXTHOP, DST(nexthop), DST(nexthop_port), 0, 0, NULL, false, NULL },
};

/* [tlsrpt]: organization defaults to the hostname (config_check.c);
 * contact and from are computed where they are used (tlsrpt_meta). */
static const struct setting tlsrpt_settings[] = {
    { "enabled", ST_BOOL, RPT(enabled), 0, 0, 0, "yes", false, NULL },
    { "organization", ST_HOSTNAME, RPT(organization), 0, 0,
      FIELD_SIZE(struct tlsrpt_config, organization) - 1, NULL, false, NULL },
    { "contact", ST_MAILBOX, RPT(contact), 0, 0, 0, NULL, false, NULL },
    { "from", ST_MAILBOX, RPT(from), 0, 0, 0, NULL, false, NULL },
    { "max_domains", ST_UINT, RPT(max_domains), 0, 1, 1000000, "10000", false, NULL },
};

static const struct setting submission_settings[] = {
    { "users", ST_FILE, SUB(users), 0, 0, 0, NULL, false, NULL },
    { "senders", ST_FILE, SUB(senders), 0, 0, 0, NULL, false, NULL },
    { "auth_failures", ST_UINT, SUB(auth_failures), 0, 1, 1000, "5", false, NULL },
    { "auth_window", ST_SECONDS, SUB(auth_window), 0, 1, DAY, "10m", false, NULL },
    { "auth_lockout", ST_SECONDS, SUB(auth_lockout), 0, 1, DAY, "15m", false, NULL },
    { "auth_failure_delay", ST_SECONDS, SUB(auth_failure_delay), 0, 0, 60, "2s", false,
      NULL },
    { "received_client_ip", ST_BOOL, SUB(received_client_ip), 0, 0, 0, "yes", false, NULL },
};

/* [metrics]: the Prometheus endpoint, served by the metrics role. */
static const struct setting metrics_settings[] = {
    { "listen", ST_ADDRESSES, MET(addresses), MET(address_count), 0, 1, NULL, false, NULL },
    { "timeout", ST_SECONDS, MET(timeout), 0, 1, 300, "10s", false, NULL },
    { "max_request_size", ST_SIZE, MET(max_request_size), 0, 256, 65536, "4096", false,
      NULL },
    { "max_connections", ST_UINT, MET(max_connections), 0, 1, 4096, "64", false, NULL },
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const struct section_def sections[] = {
    [SECTION_SERVER] = { "server", SECTION_SERVER, false,
                         server_settings, COUNT(server_settings) },
    [SECTION_LISTENER] = { "listener", SECTION_LISTENER, true,
                           listener_settings, COUNT(listener_settings) },
    [SECTION_DOMAIN] = { "domain", SECTION_DOMAIN, true,
                         domain_settings, COUNT(domain_settings) },
    [SECTION_TLS] = { "tls", SECTION_TLS, false, tls_settings, COUNT(tls_settings) },
    [SECTION_QUEUE] = { "queue", SECTION_QUEUE, false,
                        queue_settings, COUNT(queue_settings) },
    [SECTION_RELAY] = { "relay", SECTION_RELAY, false,
                        relay_settings, COUNT(relay_settings) },
    [SECTION_DESTINATION] = { "destination", SECTION_DESTINATION, true,
                              destination_settings, COUNT(destination_settings) },
    [SECTION_TLSRPT] = { "tlsrpt", SECTION_TLSRPT, false,
                         tlsrpt_settings, COUNT(tlsrpt_settings) },
    [SECTION_SUBMISSION] = { "submission", SECTION_SUBMISSION, false,
                             submission_settings, COUNT(submission_settings) },
    [SECTION_METRICS] = { "metrics", SECTION_METRICS, false,
                          metrics_settings, COUNT(metrics_settings) },
    [SECTION_MILTER] = { "milter", SECTION_MILTER, true,
                         milter_settings, COUNT(milter_settings) },
};

_Static_assert(COUNT(server_settings) <= CONFIG_SETTINGS_MAX, "raise CONFIG_SETTINGS_MAX");
_Static_assert(COUNT(listener_settings) <= CONFIG_SETTINGS_MAX, "raise CONFIG_SETTINGS_MAX");
_Static_assert(COUNT(domain_settings) <= CONFIG_SETTINGS_MAX, "raise CONFIG_SETTINGS_MAX");
_Static_assert(COUNT(tls_settings) <= CONFIG_SETTINGS_MAX, "raise CONFIG_SETTINGS_MAX");
_Static_assert(COUNT(queue_settings) <= CONFIG_SETTINGS_MAX, "raise CONFIG_SETTINGS_MAX");
_Static_assert(COUNT(relay_settings) <= CONFIG_SETTINGS_MAX, "raise CONFIG_SETTINGS_MAX");
_Static_assert(sizeof(enum tls_security) == sizeof(int), "enum stored as int");
_Static_assert(sizeof(enum milter_action) == sizeof(int), "enum stored as int");
_Static_assert(sizeof(enum milter_when) == sizeof(int), "enum stored as int");
_Static_assert(sizeof(enum relayhost_tls) == sizeof(int), "enum stored as int");
_Static_assert(FIELD_SIZE(struct relay_config, relayhost_port) == sizeof(unsigned),
               "ST_NEXTHOP stores its port as unsigned");
_Static_assert(FIELD_SIZE(struct destination_config, nexthop_port) == sizeof(unsigned),
               "ST_NEXTHOP stores its port as unsigned");

const struct section_def *config_section(enum section_kind kind)
{
    return &sections[kind];
}

const struct section_def *config_section_by_name(const char *name)
{
    for (size_t i = 0; i < COUNT(sections); i++)
        if (strcmp(sections[i].name, name) == 0)
            return &sections[i];
    return NULL;
}

int config_setting_index(const struct section_def *sec, const char *name)
{
    for (size_t i = 0; i < sec->count; i++)
        if (strcmp(sec->settings[i].name, name) == 0)
            return (int)i;
    return -1;
}

const struct setting *config_setting_find(const struct section_def *sec,
                                          const char *name)
{
    int i = config_setting_index(sec, name);

    return i < 0 ? NULL : &sec->settings[i];
}

/* Edit distance (insertions, deletions, substitutions, and a swap of two
 * neighbours) between a and b, given up past limit: a typo's distance. */
static size_t edit_distance(const char *a, const char *b, size_t limit)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t prev2[CONFIG_LINE_MAX + 1], prev[CONFIG_LINE_MAX + 1], cur[CONFIG_LINE_MAX + 1];

    if (la > CONFIG_LINE_MAX || lb > CONFIG_LINE_MAX)
        return limit + 1;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = ascii_lower((unsigned char)a[i - 1]) !=
                          ascii_lower((unsigned char)b[j - 1]);
            size_t best = prev[j - 1] + cost;

            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
        memcpy(prev2, prev, (lb + 1) * sizeof(size_t));
        memcpy(prev, cur, (lb + 1) * sizeof(size_t));
    }
    return prev[lb];
}

const char *config_setting_nearest(const struct section_def *sec, const char *name)
{
    const char *best = NULL;
    size_t best_d = 3;          /* at most two edits away, or not a typo */

    for (size_t i = 0; i < sec->count; i++) {
        size_t d = edit_distance(name, sec->settings[i].name, best_d);

        if (d < best_d) {
            best_d = d;
            best = sec->settings[i].name;
        }
    }
    return best;
}
