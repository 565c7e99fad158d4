/*
 * smtp_client_open.c - opening an outbound SMTP connection: try each
 * address of each host in order (non-blocking connect with a timeout),
 * wait for the 220 greeting, EHLO (HELO when EHLO gets 5xx), and
 * STARTTLS whenever it is offered, then EHLO again inside TLS.
 *
 * Opportunistic TLS never blocks delivery unless cfg.require_tls: a
 * refused STARTTLS continues in cleartext on the same connection, a
 * failed handshake reconnects to the same address without STARTTLS.
 *
 * Trusts: the host list from DNS (addresses are checked for family and
 * length); nothing the server says. Whatever the server sent after its
 * 220 to STARTTLS is discarded unread (RFC 3207 response injection);
 * any other reply that answers no command makes the address fail with
 * 4.5.0 (protocol error). Remote text reaches the log only through
 * log_quote().
 */
#include "delivery/smtp_client_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/x509v3.h>

#include "util/log.h"
#include "util/metrics.h"
#include "util/xalloc.h"

static void open_next(struct smtp_conn *c);

const char *open_phase_name(enum conn_state st)
{
    switch (st) {
    case CS_CONNECTING:
        return "connecting";
    case CS_GREETING:
        return "receiving the initial greeting";
    case CS_EHLO:
        return "performing the EHLO handshake";
    case CS_HELO:
        return "performing the HELO handshake";
    case CS_STARTTLS:
        return "sending STARTTLS";
    case CS_TLS_HANDSHAKE:
        return "performing the TLS handshake";
    case CS_AUTH:
    case CS_AUTH_USER:
    case CS_AUTH_PASS:
        return "authenticating (AUTH)";
    case CS_QUIT:
        return "sending QUIT";
    default:
        return "idle";
    }
}

static const struct sockaddr *current_addr(const struct smtp_conn *c, socklen_t *len)
{
    const struct dns_host *h = &c->hosts[c->host_i];

    *len = h->addr_lens[c->addr_i];
    return (const struct sockaddr *)&h->addrs[c->addr_i];
}

/* The address in sa as text ("" when it is not IPv4 or IPv6). */
static void addr_text(const struct sockaddr *sa, socklen_t len, char *out, size_t outsize)
{
    out[0] = '\0';
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6))
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out,
                  (socklen_t)outsize);
    else if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in))
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out,
                  (socklen_t)outsize);
}

/* TLS-RPT (smtp_client.h smtp_attempt): what became of TLS with the
 * current host, at most once per address; the cleartext retry after a
 * failed opportunistic handshake is not a new TLS session. */
static void report_attempt(struct smtp_conn *c, enum smtp_attempt_tls outcome)
{
    struct smtp_attempt a;
    char ip[INET6_ADDRSTRLEN] = "", local[INET6_ADDRSTRLEN] = "";
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    evutil_socket_t fd = c->bev ? bufferevent_getfd(c->bev) : -1;

    if (c->cfg.on_attempt == NULL || c->attempt_reported || c->skip_starttls ||
        c->host_i >= c->host_count)
        return;
    c->attempt_reported = true;
    if (outcome != ATTEMPT_HOST_SKIPPED && c->addr_i < c->hosts[c->host_i].addr_count) {
        const struct dns_host *h = &c->hosts[c->host_i];

        addr_text((const struct sockaddr *)&h->addrs[c->addr_i], h->addr_lens[c->addr_i], ip,
                  sizeof(ip));
        if (fd >= 0 && getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0)
            addr_text((const struct sockaddr *)&ss, sslen, local, sizeof(local));
    }
    memset(&a, 0, sizeof(a));
    a.host_index = c->host_i;
    a.host = c->hosts[c->host_i].name;
    a.ip = ip;
    a.local_ip = local;
    a.outcome = outcome;
    a.verify_error = outcome == ATTEMPT_TLS_FAILED ? c->verify_error : 0;
    c->cfg.on_attempt(&a, c->cfg.attempt_arg);
}

static void format_peer(struct smtp_conn *c)
{
    const struct dns_host *h = &c->hosts[c->host_i];
    socklen_t len;
    const struct sockaddr *sa = current_addr(c, &len);
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        port = ntohs(in6->sin6_port);
    } else if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &in4->sin_addr, ip, sizeof(ip));
        port = ntohs(in4->sin_port);
    }
    snprintf(c->peer, sizeof(c->peer), "%.255s[%s]:%u", h->name, ip, port);
}

/* This address failed: remember why, hang up, try the next one. */
void open_attempt_failed(struct smtp_conn *c, int code, const char *dsn, const char *text,
                         bool send_quit)
{
    char q[700];

    result_set(&c->last_err, SMTP_DEFERRED, code, dsn, "%s", text);
    log_info("event=smtp_attempt_failed peer=%s reason=%s", c->peer,
             log_quote(q, sizeof(q), text, strlen(text)));
    conn_drop(c, send_quit);
    c->tls = false;
    c->addr_i++;
    c->skip_starttls = false;
    open_next(c);
}

/* A refusal in the reply r: a deferral, so a 5xx class becomes 4. */
static void attempt_refused(struct smtp_conn *c, const struct smtp_reply *r, const char *what)
{
    char reply[SMTP_REPLY_LINE_MAX], text[sizeof(reply) + 400], dsn[16];

    smtp_reply_format(r, reply, sizeof(reply));
    snprintf(text, sizeof(text), "host %s %s: %s", c->peer, what, reply);
    snprintf(dsn, sizeof(dsn), "%s", r->dsn);
    if (dsn[0] == '5')
        dsn[0] = '4';
    open_attempt_failed(c, r->code, dsn, text, true);
}

static void start_tls(struct smtp_conn *c);

static void open_connected(struct smtp_conn *c, evutil_socket_t fd)
{
    struct bufferevent *bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);

    if (bev == NULL)
        fatal("smtp client: cannot create bufferevent");
    conn_attach(c, bev);
    if (c->cfg.implicit_tls) {
        start_tls(c);           /* RFC 8314: TLS first; the greeting comes inside */
        return;
    }
    c->awaiting = 1;            /* the greeting */
    c->state = CS_GREETING;
    conn_arm_timer(c, c->cfg.timeouts.greeting);
}

static void connect_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_conn *c = arg;
    char text[400];
    int err = 0;
    socklen_t errlen = sizeof(err);

    event_free(c->connect_ev);
    c->connect_ev = NULL;
    c->connect_fd = -1;
    if (what & EV_TIMEOUT)
        err = ETIMEDOUT;
    else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
        err = errno;
    if (err == 0) {
        open_connected(c, fd);
        return;
    }
    evutil_closesocket(fd);
    snprintf(text, sizeof(text), "connect to %s: %s", c->peer, strerror(err));
    open_attempt_failed(c, 0, "4.4.1", text, false);
}

/* Start connecting to the current address; false (with last_err set)
 * when that fails at once. */
static bool open_connect(struct smtp_conn *c)
{
    socklen_t len;
    const struct sockaddr *sa = current_addr(c, &len);
    struct timeval tv = { .tv_sec = c->cfg.timeouts.connect, .tv_usec = 0 };
    evutil_socket_t fd;
    int err;
    char q[sizeof(c->last_err.text) * 4 + 8];

    format_peer(c);
    c->tls = false;
    c->auth = TLS_AUTH_NONE;
    c->verify_error = 0;
    c->attempt_reported = false;
    c->tls_summary[0] = '\0';
    memset(&c->caps, 0, sizeof(c->caps));
    smtp_reply_init(c->reply);
    if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) || len == 0 ||
        len > (socklen_t)sizeof(struct sockaddr_storage)) {
        err = EAFNOSUPPORT;
        goto fail;
    }
    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err = errno;
        goto fail;
    }
    if (connect(fd, sa, len) == 0) {
        open_connected(c, fd);
        return true;
    }
    if (errno != EINPROGRESS) {
        err = errno;
        close(fd);
        goto fail;
    }
    c->connect_fd = fd;
    c->connect_ev = event_new(c->base, fd, EV_WRITE, connect_cb, c);
    if (c->connect_ev == NULL)
        fatal("smtp client: cannot create event");
    event_add(c->connect_ev, &tv);
    c->state = CS_CONNECTING;
    return true;
fail:
    result_set(&c->last_err, SMTP_DEFERRED, 0, "4.4.1", "connect to %s: %s", c->peer,
               strerror(err));
    log_info("event=smtp_attempt_failed peer=%s reason=%s", c->peer,
             log_quote(q, sizeof(q), c->last_err.text, strlen(c->last_err.text)));
    return false;
}

const struct conn_host_tls *conn_host(const struct smtp_conn *c)
{
    static const struct conn_host_tls opportunistic = { .mode = HOST_TLS_OPPORTUNISTIC };
    size_t i = c->host_i < c->host_count ? c->host_i : 0;

    return c->host_tls != NULL && c->host_count > 0 ? &c->host_tls[i] : &opportunistic;
}

/* Must this address be spoken to under TLS (or not at all)? */
bool conn_tls_required(const struct smtp_conn *c)
{
    enum host_tls m = conn_host(c)->mode;

    if (conn_host(c)->report_only)
        return c->cfg.require_tls;
    return c->cfg.require_tls || m == HOST_TLS_ENCRYPT || host_tls_authenticates(m);
}

/*
 * TLS-RPT: the outcome of one session with an MX host that matches an
 * MTA-STS policy (RFC 8460 4.3 result types: "success",
 * "starttls-not-supported", "certificate-host-mismatch",
 * "certificate-expired", "certificate-not-trusted", "validation-failure").
 * The TLS-RPT recorder hooks in here; the policy itself (domain, mode,
 * id, lines) is logged by outbound.c as event=sts_policy.
 */
static void sts_session(const struct smtp_conn *c, const char *result, const char *detail)
{
    const struct conn_host_tls *t = conn_host(c);
    char q[600];

    if (!t->sts_mx)
        return;
    log_info("event=sts_session peer=%s host=%s result=%s enforced=%s detail=%s", c->peer,
             c->hosts[c->host_i].name, result, t->report_only ? "no" : "yes",
             log_quote(q, sizeof(q), detail, strlen(detail)));
    if (t->report_only && strcmp(result, "success") != 0)
        log_warn("event=sts_testing_failure peer=%s result=%s action=\"deliver anyway "
                 "(policy mode testing)\"", c->peer, result);
}

/* The RFC 8460 result type of a failed certificate verification. */
static const char *verify_result_type(long vr)
{
    switch (vr) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
        return "certificate-host-mismatch";
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return "certificate-expired";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        return "certificate-not-trusted";
    default:
        return "validation-failure";
    }
}

/* The TLS security of the current host says: do not connect. */
static void host_deferred(struct smtp_conn *c)
{
    const struct conn_host_tls *t = conn_host(c);
    char q[sizeof(c->last_err.text) * 4 + 8];

    c->attempt_reported = false;
    report_attempt(c, ATTEMPT_HOST_SKIPPED);
    result_set(&c->last_err, SMTP_DEFERRED, 0, t->dsn[0] ? t->dsn : "4.7.5",
               "host %.255s not tried: %s", c->hosts[c->host_i].name, t->why);
    log_info("event=smtp_host_skipped host=%s reason=%s", c->hosts[c->host_i].name,
             log_quote(q, sizeof(q), c->last_err.text, strlen(c->last_err.text)));
}

void conn_free_host_tls(struct smtp_conn *c)
{
    if (c->host_tls == NULL)
        return;
    for (size_t i = 0; i < c->host_count; i++) {
        free(c->host_tls[i].tlsa);
        X509_STORE_free(c->host_tls[i].pkix_store);
    }
    free(c->host_tls);
    c->host_tls = NULL;
}

static void copy_host_tls(struct smtp_conn *c, const struct smtp_host_tls *in, size_t n)
{
    c->host_tls = xcalloc(n ? n : 1, sizeof(*c->host_tls));
    for (size_t i = 0; i < n; i++) {
        struct conn_host_tls *t = &c->host_tls[i];

        t->mode = in[i].mode;
        t->mx_dnssec = in[i].mx_dnssec;
        t->sts_mx = in[i].sts_mx;
        t->report_only = in[i].report_only && in[i].mode == HOST_TLS_PKIX;
        if (in[i].tlsa_count > 0 && in[i].tlsa != NULL) {
            t->tlsa = xcalloc(in[i].tlsa_count, sizeof(*t->tlsa));
            memcpy(t->tlsa, in[i].tlsa, in[i].tlsa_count * sizeof(*t->tlsa));
            t->tlsa_count = in[i].tlsa_count;
            t->tlsa_at_canon = in[i].tlsa_at_canon;
        }
        if (in[i].pkix_store != NULL && X509_STORE_up_ref(in[i].pkix_store))
            t->pkix_store = in[i].pkix_store;
        snprintf(t->why, sizeof(t->why), "%s", in[i].why ? in[i].why : "");
        snprintf(t->verify_name, sizeof(t->verify_name), "%s",
                 in[i].verify_name ? in[i].verify_name : "");
        snprintf(t->dsn, sizeof(t->dsn), "%s", in[i].dsn ? in[i].dsn : "");
    }
}

/* Try the current address, else the following ones; none left: fail. */
static void open_next(struct smtp_conn *c)
{
    while (c->host_i < c->host_count) {
        if (c->addr_i >= c->hosts[c->host_i].addr_count ||
            c->addr_i >= DNS_MAX_ADDRS) {
            c->host_i++;
            c->addr_i = 0;
            continue;
        }
        if (conn_host(c)->mode == HOST_TLS_DEFER) {
            host_deferred(c);
            c->host_i++;
            c->addr_i = 0;
            continue;
        }
        if (open_connect(c))
            return;
        c->addr_i++;
        c->skip_starttls = false;
    }
    c->state = CS_DEAD;
    text_fmt(c->dead_reason, sizeof(c->dead_reason), "%s", c->last_err.text);
    conn_notify(c, NOTIFY_OPEN_FAILED);
}

struct smtp_conn *smtp_conn_open(struct event_base *base, const struct smtp_client_config *cfg,
                                 const struct dns_host *hosts, size_t host_count,
                                 smtp_conn_ready_cb cb, void *arg)
{
    return smtp_conn_open_secure(base, cfg, hosts, NULL, host_count, cb, arg);
}

struct smtp_conn *smtp_conn_open_secure(struct event_base *base,
                                        const struct smtp_client_config *cfg,
                                        const struct dns_host *hosts,
                                        const struct smtp_host_tls *host_tls,
                                        size_t host_count, smtp_conn_ready_cb cb, void *arg)
{
    struct smtp_conn *c = conn_new(base, cfg);

    c->ready_cb = cb;
    c->ready_arg = arg;
    if (host_count > DNS_MAX_HOSTS)
        host_count = DNS_MAX_HOSTS;
    c->hosts = xcalloc(host_count ? host_count : 1, sizeof(*c->hosts));
    if (host_count)
        memcpy(c->hosts, hosts, host_count * sizeof(*hosts));
    c->host_count = host_count;
    if (host_tls != NULL)
        copy_host_tls(c, host_tls, host_count);
    snprintf(c->peer, sizeof(c->peer), "%s", host_count ? hosts[0].name : "(none)");
    result_set(&c->last_err, SMTP_DEFERRED, 0, "4.4.4", "no host to connect to");
    open_next(c);
    return c;
}

void open_ready(struct smtp_conn *c)
{
    c->state = CS_READY;
    conn_disarm_timer(c);
    log_info("event=smtp_connected peer=%s esmtp=%d tls=%d", c->peer, c->caps.esmtp, c->tls);
    conn_notify(c, NOTIFY_READY);
}

static void send_hello(struct smtp_conn *c, bool ehlo)
{
    conn_send_line(c, "%s %s", ehlo ? "EHLO" : "HELO", c->helo_name);
    c->state = ehlo ? CS_EHLO : CS_HELO;
    conn_arm_timer(c, c->cfg.timeouts.command);
}

static void tls_required_failure(struct smtp_conn *c, const char *dsn, const char *why)
{
    char text[600];

    text_fmt(text, sizeof(text), "TLS is required but %s", why);
    open_attempt_failed(c, 0, dsn, text, true);
}

/* EHLO or HELO accepted: STARTTLS if offered, else ready. */
static void after_hello(struct smtp_conn *c)
{
    char why[400];

    if (!c->tls && c->caps.starttls && c->cfg.tls_ctx && !c->skip_starttls &&
        conn_host(c)->mode != HOST_TLS_CLEARTEXT) {
        conn_send_line(c, "STARTTLS");
        c->state = CS_STARTTLS;
        conn_arm_timer(c, c->cfg.timeouts.command);
        return;
    }
    if (!c->tls && conn_host(c)->mode != HOST_TLS_CLEARTEXT) {
        sts_session(c, "starttls-not-supported", "STARTTLS not offered or refused");
        report_attempt(c, ATTEMPT_NO_STARTTLS);
    }
    if (!c->tls && conn_tls_required(c)) {
        if (c->cfg.tls_ctx == NULL)
            snprintf(why, sizeof(why), "no client TLS context is configured");
        else
            snprintf(why, sizeof(why), "host %s does not offer STARTTLS", c->peer);
        tls_required_failure(c, c->cfg.require_tls ? "4.7.4" : "4.7.5", why);
        return;
    }
    if (c->cfg.auth != NULL) {
        open_auth_start(c);
        return;
    }
    open_ready(c);
}

static bool is_ip_literal(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return name[0] == '[' || inet_pton(AF_INET, name, buf) == 1 ||
           inet_pton(AF_INET6, name, buf) == 1;
}

/* DANE (RFC 7672 3.1) or PKIX verification for this connection's SSL;
 * nothing for opportunistic and mandatory-unauthenticated TLS. name is
 * the SNI (the TLSA base name); other_name, when not empty, is the
 * host's other name across a CNAME, also accepted for DANE-TA(2) (RFC
 * 7672 3.2.2: both the expanded and the original name). */
static bool tls_verify_setup(struct smtp_conn *c, SSL *ssl, const char *name,
                             const char *other_name)
{
    const struct conn_host_tls *t = conn_host(c);
    int added = 0;

    if (t->mode == HOST_TLS_FINGERPRINT) {
        /* The pinned digests as DANE-EE(3) records (certificate and key):
         * OpenSSL's DANE code matches them and checks no name. */
        if (SSL_dane_enable(ssl, name[0] != '\0' ? name : "fingerprint.invalid") <= 0)
            return false;
    } else if (t->mode == HOST_TLS_DANE) {
        if (name[0] == '\0' || SSL_dane_enable(ssl, name) <= 0)
            return false;
        if (other_name[0] != '\0' && !SSL_add1_host(ssl, other_name))
            return false;
    }
    if (t->mode == HOST_TLS_DANE || t->mode == HOST_TLS_FINGERPRINT) {
        /* DANE-EE(3): the key is the identity; names are not checked. */
        SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
        for (size_t i = 0; i < t->tlsa_count; i++) {
            const struct tlsa_record *r = &t->tlsa[i];
            if (SSL_dane_tlsa_add(ssl, r->usage, r->selector, r->mtype, r->data,
                                  r->data_len) > 0)
                added++;
        }
        if (added == 0)
            return false;
        SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
        return true;
    }
    if (t->mode == HOST_TLS_PKIX) {
        const char *ref = t->verify_name[0] ? t->verify_name : name;

        if (ref[0] == '\0' || t->pkix_store == NULL ||
            !SSL_set1_verify_cert_store(ssl, t->pkix_store) || !SSL_set1_host(ssl, ref))
            return false;
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        /* report-only: the chain and name are checked (verify result),
         * but a failure does not end the handshake */
        SSL_set_verify(ssl, t->report_only ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    }
    return true;
}

/* After a handshake: how was the server authenticated? Appends
 * " verified=dane tlsa=U/S/M/HEX depth=N" or " verified=pkix" to the
 * TLS summary (the delivery log line's tls field). */
static void tls_record_auth(struct smtp_conn *c, SSL *ssl)
{
    const struct conn_host_tls *t = conn_host(c);
    size_t used = strlen(c->tls_summary);
    uint8_t u = 0, s = 0, m = 0;
    const unsigned char *data = NULL;
    size_t dlen = 0;
    char hex[17] = "";
    int depth;

    c->auth = TLS_AUTH_NONE;
    if (t->mode == HOST_TLS_DANE &&
        (depth = SSL_get0_dane_tlsa(ssl, &u, &s, &m, &data, &dlen)) >= 0) {
        for (size_t i = 0; i < dlen && i < 8; i++)
            snprintf(hex + 2 * i, 3, "%02x", data[i]);
        c->auth = TLS_AUTH_DANE;
        text_fmt(c->tls_summary + used, sizeof(c->tls_summary) - used,
                 " verified=dane tlsa=%u/%u/%u/%s depth=%d", u, s, m, hex, depth);
    } else if (t->mode == HOST_TLS_FINGERPRINT &&
               SSL_get0_dane_tlsa(ssl, &u, &s, &m, &data, &dlen) >= 0) {
        for (size_t i = 0; i < dlen && i < 8; i++)
            snprintf(hex + 2 * i, 3, "%02x", data[i]);
        c->auth = TLS_AUTH_FINGERPRINT;
        text_fmt(c->tls_summary + used, sizeof(c->tls_summary) - used,
                 " verified=fingerprint %s=%s", s == 0 ? "cert" : "key", hex);
    } else if (t->mode == HOST_TLS_PKIX && SSL_get_verify_result(ssl) == X509_V_OK) {
        c->auth = TLS_AUTH_PKIX;
        text_fmt(c->tls_summary + used, sizeof(c->tls_summary) - used, " verified=pkix%s",
                 t->sts_mx ? " policy=mta-sts" : "");
        sts_session(c, "success", "");
    } else if (t->mode == HOST_TLS_PKIX) {
        long vr = SSL_get_verify_result(ssl);
        sts_session(c, verify_result_type(vr), X509_verify_cert_error_string(vr));
    }
}

/* The 220 to STARTTLS is in: put the same socket under TLS. */
static void start_tls(struct smtp_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    const struct dns_host *host = &c->hosts[c->host_i];
    bool at_canon = conn_host(c)->mode == HOST_TLS_DANE && conn_host(c)->tlsa_at_canon &&
                    host->canon_name[0] != '\0';
    const char *name = at_canon ? host->canon_name : host->name;
    const char *other = at_canon ? host->name : host->canon_name;
    size_t pending = evbuffer_get_length(in), nlen = strnlen(name, sizeof(c->hosts->name));
    char sni[256];
    struct bufferevent *bev;
    SSL *ssl;

    if (pending)
        log_info("event=smtp_starttls_discard peer=%s bytes=%zu", c->peer, pending);
    bufferevent_setfd(c->bev, -1);
    bufferevent_free(c->bev);
    c->bev = NULL;
    c->state = CS_TLS_HANDSHAKE;
    ssl = SSL_new(c->cfg.tls_ctx);
    if (ssl == NULL) {
        evutil_closesocket(fd);
        open_tls_done(c, false, "cannot create TLS state");
        return;
    }
    if (nlen > 0 && name[nlen - 1] == '.')
        nlen--;                 /* RFC 6066 3: no trailing dot in SNI */
    sni[0] = '\0';
    if (nlen > 0 && nlen < sizeof(sni) && !is_ip_literal(name)) {
        memcpy(sni, name, nlen);
        sni[nlen] = '\0';
        SSL_set_tlsext_host_name(ssl, sni);
    }
    if (!tls_verify_setup(c, ssl, sni, other)) {
        SSL_free(ssl);
        evutil_closesocket(fd);
        open_tls_done(c, false, "cannot set up certificate verification (no usable TLSA "
                      "record or CA store)");
        return;
    }
    bev = bufferevent_openssl_socket_new(c->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        evutil_closesocket(fd);
        open_tls_done(c, false, "cannot create TLS bufferevent");
        return;
    }
    /* A server that hangs up after 221 without close_notify is normal. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    conn_attach(c, bev);
    conn_arm_timer(c, c->cfg.timeouts.command);
}

void open_tls_done(struct smtp_conn *c, bool ok, const char *reason)
{
    char why[600];

    if (ok) {
        c->tls = true;
        metrics_tls(METRICS_DIR_OUTBOUND, SSL_version(bufferevent_openssl_get_ssl(c->bev)));
        smtp_client_tls_summary(bufferevent_openssl_get_ssl(c->bev), c->tls_summary,
                                sizeof(c->tls_summary));
        tls_record_auth(c, bufferevent_openssl_get_ssl(c->bev));
        if (host_tls_authenticates(conn_host(c)->mode) && c->auth == TLS_AUTH_NONE) {
            long vr = SSL_get_verify_result(bufferevent_openssl_get_ssl(c->bev));

            /* A testing MTA-STS host (report_only) is reported, then used. */
            c->verify_error = vr != X509_V_OK ? vr : 0;
            report_attempt(c, c->verify_error ? ATTEMPT_TLS_FAILED : ATTEMPT_NOT_AUTHENTICATED);
            if (!conn_host(c)->report_only) {
                text_fmt(why, sizeof(why), "the server %s was not authenticated", c->peer);
                tls_required_failure(c, "4.7.5", why);
                return;
            }
        } else {
            report_attempt(c, ATTEMPT_TLS_OK);
        }
        log_info("event=smtp_tls peer=%s tls=%s", c->peer,
                 log_quote(why, sizeof(why), c->tls_summary, strlen(c->tls_summary)));
        /* RFC 3207 4.2: forget what the server said before TLS. */
        memset(&c->caps, 0, sizeof(c->caps));
        smtp_reply_init(c->reply);
        if (c->cfg.implicit_tls) {
            c->awaiting = 1;    /* the greeting, inside TLS (RFC 8314) */
            c->state = CS_GREETING;
            conn_arm_timer(c, c->cfg.timeouts.greeting);
            return;
        }
        send_hello(c, true);
        return;
    }
    if (conn_host(c)->mode == HOST_TLS_PKIX && !conn_host(c)->report_only)
        sts_session(c, "validation-failure", reason);
    report_attempt(c, ATTEMPT_TLS_FAILED);
    if (conn_tls_required(c) || c->cfg.implicit_tls) {     /* implicit: no cleartext retry */
        text_fmt(why, sizeof(why), "the TLS handshake with %s failed: %s", c->peer, reason);
        tls_required_failure(c, "4.7.5", why);
        return;
    }
    log_warn("event=smtp_tls_failed peer=%s reason=%s action=\"retry without STARTTLS\"",
             c->peer, log_quote(why, sizeof(why), reason, strlen(reason)));
    conn_drop(c, false);
    c->tls = false;
    c->skip_starttls = true;
    open_next(c);
}

void open_io_error(struct smtp_conn *c, const char *text)
{
    /* Losing the server right after STARTTLS looks like a broken TLS
     * stack: retry in cleartext like a failed handshake. */
    if (c->state == CS_TLS_HANDSHAKE || c->state == CS_STARTTLS) {
        open_tls_done(c, false, text);
        return;
    }
    open_attempt_failed(c, 0, c->state == CS_CONNECTING ? "4.4.1" : "4.4.2", text, false);
}

void open_protocol_error(struct smtp_conn *c, const char *text)
{
    open_attempt_failed(c, 0, "4.5.0", text, false);
}

void open_reply(struct smtp_conn *c, const struct smtp_reply *r)
{
    char reply[SMTP_REPLY_LINE_MAX], why[600];

    switch (c->state) {
    case CS_GREETING:
        if (r->code == 220)
            send_hello(c, true);
        else
            attempt_refused(c, r, "refused to talk to me");
        break;
    case CS_EHLO:
        if (r->code / 100 == 2) {
            smtp_caps_parse(&c->caps, r);
            after_hello(c);
        } else if (r->code / 100 == 5) {
            send_hello(c, false);
        } else {
            attempt_refused(c, r, "refused EHLO");
        }
        break;
    case CS_HELO:
        if (r->code / 100 == 2) {
            memset(&c->caps, 0, sizeof(c->caps));
            after_hello(c);
        } else {
            attempt_refused(c, r, "refused HELO");
        }
        break;
    case CS_STARTTLS:
        if (r->code == 220) {
            start_tls(c);
            break;
        }
        smtp_reply_format(r, reply, sizeof(reply));
        report_attempt(c, ATTEMPT_NO_STARTTLS);
        if (conn_tls_required(c)) {
            text_fmt(why, sizeof(why), "host %s refused STARTTLS: %s", c->peer, reply);
            tls_required_failure(c, c->cfg.require_tls ? "4.7.4" : "4.7.5", why);
            break;
        }
        sts_session(c, "starttls-not-supported", "STARTTLS refused");
        log_info("event=smtp_starttls_refused peer=%s action=\"continue in cleartext\"",
                 c->peer);
        open_ready(c);
        break;
    case CS_AUTH:
    case CS_AUTH_USER:
    case CS_AUTH_PASS:
        open_auth_reply(c, r);
        break;
    default:
        break;
    }
}
