/*
 * config.h - sealpost's configuration: the settings, their defaults and
 * bounds, loading from an INI file (inih) and printing the effective
 * values (`sealpost check`).
 *
 * Trusts the file only as far as its syntax: every value is checked
 * against its bounds; unknown sections and keys are errors reported as
 * "FILE:LINE: message". Relative paths are resolved against the folder
 * of the config file.
 */
#ifndef SEALPOST_CONFIG_CONFIG_H
#define SEALPOST_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "util/cidr.h"

#define CONFIG_NAME_MAX      64
#define CONFIG_MAX_LINE_LENGTH 65536   /* max_line_length's upper bound */
#define CONFIG_MAX_LISTENERS 16
#define CONFIG_MAX_ADDRESSES 8      /* per listener */
#define CONFIG_MAX_DOMAINS   64
#define CONFIG_MAX_CERTS     4
#define CONFIG_MAX_CLEARTEXT 32
#define CONFIG_MAX_MILTERS   16     /* [milter NAME] sections, and milters per listener */
#define CONFIG_MAX_MILTER_PROCS 16  /* [server] milter_processes */
#define CONFIG_FILE_MAX      (1u << 20)     /* bytes in the config file */

enum listener_role { ROLE_MX = 0, ROLE_SUBMISSION };
enum listener_tls { LTLS_NONE = 0, LTLS_STARTTLS, LTLS_IMPLICIT };

struct listen_address {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char text[80];                  /* as written, e.g. "[::1]:2525" */
};

struct listener_config {
    char name[CONFIG_NAME_MAX];
    struct listen_address addresses[CONFIG_MAX_ADDRESSES];
    size_t address_count;
    enum listener_role role;
    enum listener_tls tls;
    bool require_tls;
    /* entries are "localpart" (any local domain) or "local@domain";
     * stored lower-cased */
    char *cleartext_recipients[CONFIG_MAX_CLEARTEXT];
    size_t cleartext_count;
    /* [milter NAME] sections asked, in order, at the end of each message
     * (README "Milters"); lower-cased names */
    char *milters[CONFIG_MAX_MILTERS];
    size_t milter_count;
};

/* [milter NAME]: a Sendmail milter (protocol 6) the milter role talks to. */
enum milter_action { MILTER_ACTION_TEMPFAIL = 0, MILTER_ACTION_ACCEPT, MILTER_ACTION_REJECT };
/* When a milter is asked (README "Milters"): at the end of the message,
 * with the whole conversation (data), or at an SMTP command, with the
 * conversation up to that command only, so that its verdict answers it. */
enum milter_when {
    MILTER_AT_DATA = 0, MILTER_AT_CONNECT, MILTER_AT_MAIL, MILTER_AT_RCPT,
};
struct milter_config {
    char name[CONFIG_NAME_MAX];     /* lower-cased */
    char *socket;                   /* "unix:/PATH" or "inet:HOST:PORT" as written
                                       (config_milter_target) */
    int default_action;             /* enum milter_action: milter down, slow or broken */
    unsigned timeout;               /* seconds for the connect and for each reply */
    int stage;                      /* enum milter_when */
};

struct domain_config {
    char name[256];                 /* lower-cased */
    char *mailboxes_file;           /* absolute path or NULL = accept any */
    char *maildir;                  /* template with {domain} and {local} */
    char owner[33];                 /* who its Maildirs belong to and who delivers
                                       into them; default [server] queue_user */
    char *aliases_file;             /* alias file (mail/alias.h) or NULL */
    /* LMTP delivery (RFC 2033, README "Delivering to Dovecot (LMTP)") */
    char *deliver;                  /* NULL: Maildir; else "lmtp:unix:/PATH" or
                                       "lmtp:[HOST]:PORT" (config_lmtp_target) */
    unsigned lmtp_timeout;          /* seconds for each LMTP reply */
};

struct tls_config {
    char *certificates[CONFIG_MAX_CERTS];
    char *private_keys[CONFIG_MAX_CERTS];
    size_t cert_count;
    size_t key_count;
    int min_version;                /* TLS1_2_VERSION or TLS1_3_VERSION */
};

/* Outbound TLS security (README "Outbound TLS security"). */
enum tls_security {
    TLS_SEC_DANE_OR_STS = 0,        /* DANE, else MTA-STS, else opportunistic */
    TLS_SEC_NONE,                   /* never STARTTLS */
    TLS_SEC_MAY,                    /* opportunistic; DANE still wins */
    TLS_SEC_ENCRYPT,                /* TLS mandatory, unauthenticated; DANE wins */
    TLS_SEC_VERIFY,                 /* TLS mandatory, PKIX against ca_file */
    TLS_SEC_DANE,                   /* DANE when published, else opportunistic */
    TLS_SEC_DANE_ONLY,              /* DANE mandatory: no usable TLSA -> defer */
    TLS_SEC_FINGERPRINT,            /* TLS mandatory, the server's certificate or key
                                       must match a [destination] fingerprint */
};

#define CONFIG_MAX_DESTINATIONS 64
#define CONFIG_MAX_FINGERPRINTS 16

/* A pinned server identity: the SHA-256 digest of a certificate or of its
 * public key (SubjectPublicKeyInfo); either matches. */
struct fingerprint {
    unsigned char sha256[32];
    char text[65];                  /* lower-case hex, for printing */
};

/* [destination NAME]: the policy for one recipient domain (or relayhost). */
struct destination_config {
    char name[256];                 /* lower-cased */
    int security;                   /* enum tls_security */
    char *ca_file;                  /* PEM CA file for verify, or NULL = system bundle */
    struct fingerprint fingerprints[CONFIG_MAX_FINGERPRINTS];   /* security = fingerprint */
    size_t fingerprint_count;
    char *nexthop;                  /* "host" or "[host]": fixed next hop for this
                                       domain ([route D]); NULL = MX / relayhost */
    unsigned nexthop_port;          /* default [relay] smtp_port */
};

/* [relay] relayhost_tls: STARTTLS after the greeting (port 587 or 25), or
 * TLS from the first byte (RFC 8314, port 465). */
enum relayhost_tls { RELAYHOST_TLS_STARTTLS = 0, RELAYHOST_TLS_IMPLICIT };

#define CONFIG_MAX_NETWORKS 64
#define CONFIG_MAX_RELAY_DOMAINS 256
#define CONFIG_MAX_RETRY    16

struct relay_config {
    struct network networks[CONFIG_MAX_NETWORKS];   /* trusted_networks */
    size_t network_count;
    unsigned smtp_port;             /* outbound port, default 25 */
    char *relayhost;                /* "host" or "[host]" (no MX lookup); NULL = MX */
    unsigned relayhost_port;        /* default smtp_port */
    char *resolver;                 /* "IP@port" or NULL = /etc/resolv.conf */
    char *trust_anchor;             /* path or NULL = system root anchor */
    char *unbound_config;           /* path or NULL */
    char helo_name[256];            /* default: [server] hostname */
    unsigned retry[CONFIG_MAX_RETRY];   /* seconds; the last repeats */
    size_t retry_count;
    unsigned max_queue_lifetime;    /* seconds, default 5d */
    unsigned bounce_lifetime;       /* seconds a bounce may stay queued, default 5d */
    unsigned bounce_after_warning;  /* seconds, 0 = no delay warning */
    unsigned destination_concurrency;   /* connections per destination, default 20 */
    unsigned max_outbound_connections;  /* total, default 200 */
    unsigned connect_timeout;       /* seconds, default 30 */
    unsigned smtp_timeout;          /* 0 = RFC 5321 4.5.3.2 values; else every reply timeout */
    unsigned dns_timeout;           /* seconds for one whole MX + address lookup, default 30 */
    int security;                   /* enum tls_security, default dane-or-sts */
    char *ca_file;                  /* MTA-STS CA file, NULL = system bundle */
    unsigned mta_sts_timeout;       /* seconds for one policy fetch, default 30 */
    unsigned mta_sts_port;          /* policy host port, default 443 (tests) */
    /* Smart host AUTH (README "Outbound relay"): how TLS starts with the
     * relayhost, and the file with its "user:password" line (NULL: no
     * AUTH). The master reads the file; the delivery process gets its
     * bytes, never the path's contents through the config. */
    int relayhost_tls;              /* enum relayhost_tls, default starttls */
    char *relayhost_credentials;    /* path or NULL */
    char *relay_domains[CONFIG_MAX_RELAY_DOMAINS];  /* accepted and forwarded (not
                                                       local) */
    size_t relay_domain_count;
    /* The recipients relay_domains take ("user@domain" and "@domain"
     * lines, mail/relay_recipients.h); NULL: every local part. Read by
     * the master with the mailbox lists. */
    char *relay_recipients;         /* path or NULL */
};

struct queue_config {
    bool hold;                      /* keep accepted mail queued, deliver nothing */
    /* [milter NAME]s asked about mail from `sealpost sendmail` (Postfix's
     * non_smtpd_milters), in order; lower-cased names */
    char *sendmail_milters[CONFIG_MAX_MILTERS];
    size_t sendmail_milter_count;
};

/* [tlsrpt]: TLS reporting (RFC 8460) on the sending side. */
struct tlsrpt_config {
    bool enabled;                   /* record sessions and mail daily reports, default yes */
    char organization[256];         /* organization-name; default [server] hostname */
    char *contact;                  /* contact-info; NULL = the from address */
    char *from;                     /* report sender; NULL = postmaster@hostname */
    unsigned max_domains;           /* policy domains recorded per UTC day */
};

/* [submission]: authenticated clients on role = submission listeners
 * (README "Submission"). */
struct submission_config {
    char *users;                    /* "user:crypt-hash" lines; NULL: no AUTH */
    char *senders;                  /* "address user" / "@domain user" lines; NULL:
                                       a user sends only as its own name */
    unsigned auth_failures;         /* failed AUTHs per client address in ... */
    unsigned auth_window;           /* ... this many seconds lock the address out */
    unsigned auth_lockout;          /* for this many seconds */
    unsigned auth_failure_delay;    /* seconds before a failure is answered */
    bool received_client_ip;        /* Received: of a submission names the client's IP */
};

/* [metrics]: the Prometheus endpoint (docs/OPERATIONS.md "Metrics"); off
 * without listen. */
struct metrics_config {
    struct listen_address addresses[1];     /* listen = HOST:PORT */
    size_t address_count;                   /* 0: no metrics role */
    unsigned timeout;                       /* seconds for a request to arrive */
    size_t max_request_size;                /* request line + headers, octets */
    unsigned max_connections;               /* open HTTP connections at once */
};

struct config {
    char *path;                     /* absolute path of the file loaded */
    char *dir;                      /* its folder */
    char *text;                     /* the bytes parsed (NUL after text_len) */
    size_t text_len;
    bool replayed;                  /* from config_load_copy */

    /* [server] */
    char hostname[256];
    char *spool;
    char *postmaster;               /* where postmaster@<any local domain> goes */
    uint64_t max_message_size;      /* octets */
    unsigned max_recipients;
    unsigned max_errors;
    size_t max_line_length;         /* command line incl. CRLF */
    size_t max_text_line_length;    /* message text line incl. CRLF */
    uint64_t max_output_buffer;     /* reply octets queued per session before input pauses */
    unsigned command_timeout;       /* seconds */
    unsigned data_timeout;          /* seconds */
    unsigned close_timeout;         /* seconds a closing session may take to end */
    unsigned max_connections;
    unsigned max_connections_per_ip;
    unsigned per_ip_ipv6_prefix;    /* IPv6 clients counted per this prefix length */
    unsigned shutdown_timeout;      /* seconds */
    unsigned delivery_retry;        /* seconds between local delivery retries */
    int log_level;                  /* enum log_level */
    char *log;                      /* "stderr", "syslog" or a file's path */
    char *syslog_socket;            /* the local syslog socket (log = syslog) */
    char user[33];                  /* smtpd workers run as this user ("" = no switch) */
    char queue_user[33];            /* the queue process runs as this user */
    char delivery_user[33];         /* the delivery process (remote SMTP, DNS) */
    unsigned workers;               /* smtpd worker processes, 0 = one per CPU */
    unsigned milter_processes;      /* milter role processes (when milters are used) */
    unsigned max_alias_recipients;  /* recipients one RCPT may expand to (aliases) */

    struct listener_config listeners[CONFIG_MAX_LISTENERS];
    size_t listener_count;

    struct domain_config domains[CONFIG_MAX_DOMAINS];
    size_t domain_count;

    struct destination_config destinations[CONFIG_MAX_DESTINATIONS];
    size_t destination_count;

    struct milter_config milters[CONFIG_MAX_MILTERS];
    size_t milter_count;

    struct tls_config tls;
    struct queue_config queue;      /* [queue] */
    struct submission_config submission;    /* [submission] */
    struct relay_config relay;      /* [relay] */
    struct tlsrpt_config tlsrpt;    /* [tlsrpt] */
    struct metrics_config metrics;  /* [metrics] */
};

/*
 * Load path into a freshly allocated config. On error returns NULL and
 * writes "FILE:LINE: message" (or "FILE: message") into err.
 */
struct config *config_load(const char *path, char *err, size_t errsize);
void config_free(struct config *cfg);

/*
 * In a role the master started: parse again the bytes the master's
 * config_load read (its cfg->text), so that the role runs the master's
 * config even if the file changed since. path is the master's cfg->path
 * (relative paths resolve against its folder, messages name it),
 * hostname the master's cfg->hostname (the default when the text sets
 * none, instead of asking the system again). Files the config names are
 * not checked again: the roles take them from the master's snapshot
 * (util/snapshot.h) or report them when they read them.
 */
struct config *config_load_copy(const char *text, size_t len, const char *path,
                                const char *hostname, char *err, size_t errsize);

/* Print every effective setting, in INI syntax that config_load accepts. */
void config_print(const struct config *cfg, FILE *out);

/* The fixed part of a Maildir template, the folder every mailbox of the
 * domain lives under: up to the last '/' before the first placeholder
 * ("/var/mail/vhosts/{domain}/{local}" -> "/var/mail/vhosts"). */
void config_maildir_root(const char *tmpl, char *out, size_t size);

/*
 * Local delivery processes ([domain] owner): the distinct owners that are
 * not the queue user, in the order of their first domain in the file.
 * Slot k of the local role delivers for owners[k]; every process computes
 * the same list from the same config. Returns the count (at most
 * CONFIG_MAX_DOMAINS).
 */
size_t config_local_owners(const struct config *cfg, const char *owners[CONFIG_MAX_DOMAINS]);

/* The local-delivery slot of a domain's owner, -1 when the queue user
 * owns it (the queue process delivers itself). */
int config_owner_slot(const struct config *cfg, const struct domain_config *dc);

/* Where [domain] deliver = lmtp:... sends mail (config_lmtp_target). */
#define LMTP_TARGET_MAX 300
struct lmtp_target {
    bool unix_socket;               /* path set; else host and port */
    char path[LMTP_TARGET_MAX];     /* absolute path of the unix socket */
    char host[LMTP_TARGET_MAX];     /* IP address or host name, no brackets */
    unsigned port;
};

/*
 * Parse a deliver value: "maildir" (false, *is_lmtp false), or
 * "lmtp:unix:/ABSOLUTE/PATH" or "lmtp:[HOST]:PORT" / "lmtp:HOST:PORT"
 * (true, *is_lmtp true, out filled). false with err on anything else.
 */
bool config_parse_deliver(const char *value, bool *is_lmtp, struct lmtp_target *out,
                          char *err, size_t errsize);
/* The LMTP target of a domain; false when it delivers to Maildirs. */
bool config_lmtp_target(const struct domain_config *dc, struct lmtp_target *out);
/* The one folder every lmtp:unix: socket of the config lives in (the LMTP
 * process's chroot; config_finish refuses sockets in several folders),
 * "" when there is none. */
void config_lmtp_socket_dir(const struct config *cfg, char *out, size_t size);
/* Some [domain] delivers over LMTP (the master then starts the lmtp role). */
bool config_uses_lmtp(const struct config *cfg);

/*
 * Parse a [milter] socket: "unix:/ABSOLUTE/PATH", "inet:HOST:PORT",
 * "inet:PORT@HOST" (Sendmail's and Postfix's spelling) or
 * "inet6:[ADDR]:PORT"; HOST is an IP address literal or "localhost"
 * (127.0.0.1): the milter role resolves no names. false with err.
 */
bool config_parse_milter_socket(const char *value, struct lmtp_target *out, char *err,
                                size_t errsize);
/* The [milter NAME] section of a lower-case name, or NULL. */
const struct milter_config *config_find_milter(const struct config *cfg, const char *name);
/* Some listener asks milters (the master then starts the milter role). */
bool config_uses_milters(const struct config *cfg);
/* The name milter jobs use for mail from `sealpost sendmail` in place of
 * a listener's (no listener can be called so). */
#define CONFIG_SENDMAIL_MILTERS "*sendmail"
/* The milters of listener `who`, or of CONFIG_SENDMAIL_MILTERS, in order:
 * *count names (lower-cased), or NULL with 0 when there is no such. */
char *const *config_milters_for(const struct config *cfg, const char *who, size_t *count);
/* Do the milters of `who` (as config_milters_for) include one of that
 * stage? */
bool config_milters_at(const struct config *cfg, const char *who, enum milter_when when);
/* The one folder every unix: milter socket lives in (the milter role's
 * chroot; config_finish refuses several), "" when there is none. */
void config_milter_socket_dir(const struct config *cfg, char *out, size_t size);

/* The domain config for a lower-case domain name, or NULL. */
const struct domain_config *config_find_domain(const struct config *cfg,
                                               const char *domain);

/* Is a lower-case domain in [relay] relay_domains? */
bool config_is_relay_domain(const struct config *cfg, const char *domain);

/* The [destination NAME] config for a lower-case name, or NULL. */
const struct destination_config *config_find_destination(const struct config *cfg,
                                                         const char *name);

/* Parse "30s", "5m", "2h", "1d" or a plain number of seconds. */
bool config_parse_duration(const char *s, uint64_t *seconds);
/* Parse "52428800", "50M", "10k", "1G" (binary multiples). */
bool config_parse_size(const char *s, uint64_t *bytes);

#endif
