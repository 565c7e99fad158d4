/*
 * config.c - load the INI config file: read it whole (bounded; the bytes
 * are kept, for the roles to parse the same text), read physical lines
 * (bounded, with line numbers), open sections, hand each key to the
 * settings table, then let config_check.c fill in defaults and check the
 * whole. Also config_load_copy, config_free and config_find_domain.
 *
 * Trusts inih only to split "key = value" lines and continuation lines;
 * section headers, line lengths and control characters are checked here
 * before inih sees a line. The first error stops the load; it is kept as
 * "FILE:LINE: message".
 *
 * inih (Debian r55) details this relies on: the reader is called with a
 * 200-byte buffer; a line indented after a key continues that key
 * (inline comments are not stripped there, so we do it); the handler sees
 * section names cut to 49 bytes, so sections are tracked here instead.
 */
#include "config/config_internal.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "util/ascii.h"
#include "util/xalloc.h"

enum fetch { FETCH_EOF, FETCH_OK, FETCH_TOO_LONG, FETCH_CONTROL };

bool loader_error(struct loader *ld, int line, const char *fmt, ...)
{
    va_list ap;

    if (ld->failed)
        return false;
    ld->failed = true;
    ld->err_line = line;
    va_start(ap, fmt);
    vsnprintf(ld->err, sizeof(ld->err), fmt, ap);
    va_end(ap);
    return false;
}

void config_section_label(const struct section_def *def, const char *name,
                          char *buf, size_t bufsize)
{
    if (def->named)
        snprintf(buf, bufsize, "[%s %s]", def->name, name);
    else
        snprintf(buf, bufsize, "[%s]", def->name);
}

/* ---- reading lines ---------------------------------------------------- */

static bool is_control(int c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

/*
 * One physical line into buf (size bytes) without its "\n" or "\r\n",
 * plus a "\n" when it fits. The rest of a too-long line is consumed.
 */
static enum fetch fetch_line(FILE *fp, char *buf, size_t size)
{
    size_t len = 0;
    bool any = false, too_long = false, control = false;
    int c;

    while ((c = getc(fp)) != EOF && c != '\n') {
        any = true;
        if (len < size - 1)
            buf[len++] = (char)c;
        else if (c != '\r')
            too_long = true;
        if (c != '\r' && is_control(c))
            control = true;
    }
    if (!any && c == EOF)
        return FETCH_EOF;
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    if (memchr(buf, '\r', len))
        control = true;
    if (len + 1 < size)
        buf[len++] = '\n';
    buf[len] = '\0';
    if (too_long)
        return FETCH_TOO_LONG;
    return control ? FETCH_CONTROL : FETCH_OK;
}

static char *skip_blanks(char *s)
{
    while (*s && ascii_space((unsigned char)*s))
        s++;
    return s;
}

/* Cut an inline comment: ';' after a blank, as inih does on key lines. */
static void strip_inline_comment(char *s)
{
    for (char *p = s + 1; *p; p++) {
        if (*p == ';' && ascii_space((unsigned char)p[-1])) {
            *p = '\0';
            return;
        }
    }
}

/* ---- sections --------------------------------------------------------- */

static bool open_listener(struct loader *ld, const char *name)
{
    struct config *cfg = ld->cfg;

    if (!config_valid_listener_name(name))
        return loader_error(ld, ld->lineno, "invalid listener name '%s' (letters, "
                            "digits, '-' and '_', at most %d)", name,
                            CONFIG_NAME_MAX - 1);
    for (size_t i = 0; i < cfg->listener_count; i++)
        if (strcmp(cfg->listeners[i].name, name) == 0)
            return loader_error(ld, ld->lineno, "duplicate section [listener %s]", name);
    if (cfg->listener_count >= CONFIG_MAX_LISTENERS)
        return loader_error(ld, ld->lineno, "too many listeners (max %d)",
                            CONFIG_MAX_LISTENERS);
    snprintf(cfg->listeners[cfg->listener_count].name, CONFIG_NAME_MAX, "%s", name);
    ld->base = &cfg->listeners[cfg->listener_count];
    ld->state = &ld->listeners[cfg->listener_count++];
    return true;
}

static bool open_domain(struct loader *ld, const char *name)
{
    struct config *cfg = ld->cfg;
    struct domain_config *d;

    if (!config_valid_domain(name))
        return loader_error(ld, ld->lineno, "invalid domain name '%s'", name);
    if (config_find_domain(cfg, name))
        return loader_error(ld, ld->lineno, "duplicate section [domain %s]", name);
    if (cfg->domain_count >= CONFIG_MAX_DOMAINS)
        return loader_error(ld, ld->lineno, "too many domains (max %d)",
                            CONFIG_MAX_DOMAINS);
    d = &cfg->domains[cfg->domain_count];
    snprintf(d->name, sizeof(d->name), "%s", name);
    config_lowercase(d->name);
    ld->base = d;
    ld->state = &ld->domains[cfg->domain_count++];
    return true;
}

static bool open_destination(struct loader *ld, const char *name)
{
    struct config *cfg = ld->cfg;
    struct destination_config *d;
    char lower[sizeof(d->name)];

    if (!config_valid_domain(name))
        return loader_error(ld, ld->lineno, "invalid destination name '%s'", name);
    snprintf(lower, sizeof(lower), "%s", name);
    config_lowercase(lower);
    if (config_find_destination(cfg, lower))
        return loader_error(ld, ld->lineno, "duplicate section [destination %s]", name);
    if (cfg->destination_count >= CONFIG_MAX_DESTINATIONS)
        return loader_error(ld, ld->lineno, "too many destinations (max %d)",
                            CONFIG_MAX_DESTINATIONS);
    d = &cfg->destinations[cfg->destination_count];
    snprintf(d->name, sizeof(d->name), "%s", lower);
    ld->base = d;
    ld->state = &ld->destinations[cfg->destination_count++];
    return true;
}

static bool open_milter(struct loader *ld, const char *name)
{
    struct config *cfg = ld->cfg;
    struct milter_config *m;
    char lower[CONFIG_NAME_MAX];

    if (!config_valid_listener_name(name))
        return loader_error(ld, ld->lineno, "invalid milter name '%s' (letters, digits, "
                            "'-' and '_', at most %d)", name, CONFIG_NAME_MAX - 1);
    snprintf(lower, sizeof(lower), "%s", name);
    config_lowercase(lower);
    if (config_find_milter(cfg, lower))
        return loader_error(ld, ld->lineno, "duplicate section [milter %s]", name);
    if (cfg->milter_count >= CONFIG_MAX_MILTERS)
        return loader_error(ld, ld->lineno, "too many milters (max %d)", CONFIG_MAX_MILTERS);
    m = &cfg->milters[cfg->milter_count];
    snprintf(m->name, sizeof(m->name), "%s", lower);
    ld->base = m;
    ld->state = &ld->milters[cfg->milter_count++];
    return true;
}

static bool open_single(struct loader *ld, struct section_state *st, void *base)
{
    if (st->header_line)
        return loader_error(ld, ld->lineno, "duplicate section %s (first on line %d)",
                            ld->label, st->header_line);
    ld->base = base;
    ld->state = st;
    return true;
}

/* "kind" or "kind name" (one or more blanks between) is in text. */
static bool open_section(struct loader *ld, char *text)
{
    char *name = text + strcspn(text, " \t");
    const struct section_def *def;
    bool ok;

    if (*name) {
        *name = '\0';
        name = skip_blanks(name + 1);
    }
    /* [route D] (issue 15's name for a domain's next hop) is [destination D] */
    def = config_section_by_name(strcmp(text, "route") == 0 ? "destination" : text);
    if (!def)
        return loader_error(ld, ld->lineno, "unknown section [%s%s%s]",
                            text, *name ? " " : "", name);
    if (def->named && !*name)
        return loader_error(ld, ld->lineno, "section [%s] needs a name: [%s NAME]",
                            text, text);
    if (!def->named && *name)
        return loader_error(ld, ld->lineno, "section [%s] takes no name", text);
    config_section_label(def, name, ld->label, sizeof(ld->label));
    if (def->kind == SECTION_LISTENER)
        ok = open_listener(ld, name);
    else if (def->kind == SECTION_DOMAIN)
        ok = open_domain(ld, name);
    else if (def->kind == SECTION_DESTINATION)
        ok = open_destination(ld, name);
    else if (def->kind == SECTION_MILTER)
        ok = open_milter(ld, name);
    else if (def->kind == SECTION_SERVER)
        ok = open_single(ld, &ld->server, ld->cfg);
    else if (def->kind == SECTION_TLS)
        ok = open_single(ld, &ld->tls, &ld->cfg->tls);
    else if (def->kind == SECTION_QUEUE)
        ok = open_single(ld, &ld->queue, &ld->cfg->queue);
    else if (def->kind == SECTION_RELAY)
        ok = open_single(ld, &ld->relay, &ld->cfg->relay);
    else if (def->kind == SECTION_TLSRPT)
        ok = open_single(ld, &ld->tlsrpt, &ld->cfg->tlsrpt);
    else if (def->kind == SECTION_SUBMISSION)
        ok = open_single(ld, &ld->submission, &ld->cfg->submission);
    else if (def->kind == SECTION_METRICS)
        ok = open_single(ld, &ld->metrics, &ld->cfg->metrics);
    else
        ok = loader_error(ld, ld->lineno, "internal error: section [%s] has no loader", text);
    if (ok) {
        ld->sec = def;
        ld->state->header_line = ld->lineno;
        ld->have_prev_key = false;
    }
    return ok;
}

/* p points at '[' of a section header line. */
static bool section_line(struct loader *ld, char *p)
{
    char text[CONFIG_LINE_MAX];
    const char *end = strchr(p, ']');
    const char *rest;
    size_t len;

    if (!end)
        return loader_error(ld, ld->lineno, "syntax error: missing ']'");
    rest = end + 1;
    while (*rest && ascii_space((unsigned char)*rest))
        rest++;
    if (*rest && *rest != ';')
        return loader_error(ld, ld->lineno, "unexpected text after ']'");
    p = skip_blanks(p + 1);
    len = (size_t)(end - p);
    while (len > 0 && ascii_space((unsigned char)p[len - 1]))
        len--;
    memcpy(text, p, len);
    text[len] = '\0';
    return open_section(ld, text);
}

/*
 * Decide what inih will make of the line: comment, continuation of the
 * previous key, section header, or a key line (left to inih).
 */
static bool classify_line(struct loader *ld, char *buf)
{
    char *p = buf;
    char *start;

    if (ld->lineno == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    start = skip_blanks(p);
    ld->continuation = false;
    if (*start == '\0' || *start == ';' || *start == '#')
        return true;
    if (start > buf && ld->have_prev_key) {
        ld->continuation = true;
        strip_inline_comment(start);
        return true;
    }
    if (*start == '[')
        return section_line(ld, start);
    return true;
}

static char *read_line(char *buf, int size, void *stream)
{
    struct loader *ld = stream;

    if (ld->failed)
        return NULL;
    if (ld->line_size == 0)
        ld->line_size = size;
    /* Newer inih calls again with a small buffer to discard the rest of a
     * line that filled its buffer; fetch_line already did that. */
    if (size != ld->line_size || size < 3)
        return NULL;
    switch (fetch_line(ld->fp, buf, (size_t)size)) {
    case FETCH_EOF:
        return NULL;
    case FETCH_TOO_LONG:
        ld->lineno++;
        loader_error(ld, ld->lineno, "line too long (max %d characters; continue "
                     "long lists on indented lines)", size - 1);
        return NULL;
    case FETCH_CONTROL:
        ld->lineno++;
        loader_error(ld, ld->lineno, "control character in line");
        return NULL;
    case FETCH_OK:
        break;
    }
    ld->lineno++;
    return classify_line(ld, buf) ? buf : NULL;
}

/* ---- keys ------------------------------------------------------------- */

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct loader *ld = user;
    const struct setting *s;
    char msg[CONFIG_MSG_MAX];
    int *first;

    (void)section;      /* cut to 49 bytes by inih; ld->sec is exact */
    ld->have_prev_key = true;
    if (ld->failed)
        return 0;
    if (!ld->sec)
        return loader_error(ld, ld->lineno, "key '%s' outside of any section", name);
    s = config_setting_find(ld->sec, name);
    if (!s) {
        const char *near = config_setting_nearest(ld->sec, name);

        if (near)
            return loader_error(ld, ld->lineno, "unknown key '%s' in %s (did you mean '%s'?)",
                                name, ld->label, near);
        return loader_error(ld, ld->lineno, "unknown key '%s' in %s", name, ld->label);
    }
    first = &ld->state->key_line[s - ld->sec->settings];
    if (*first && config_value_list_style(s) == LIST_NONE)
        return loader_error(ld, ld->lineno, ld->continuation
                            ? "%s in %s takes a single value (an indented line "
                              "continues the key above it)"
                            : "duplicate key '%s' in %s", name, ld->label);
    /* An empty user name is meaningful ("no user switch"). */
    if (!*value && config_value_list_style(s) == LIST_NONE && s->type != ST_USERNAME)
        return loader_error(ld, ld->lineno, "missing value for %s in %s",
                            name, ld->label);
    if (!*first)
        *first = ld->lineno;
    if (!config_value_parse(s, ld->base, value, ld->cfg, msg, sizeof(msg)))
        return loader_error(ld, ld->lineno, "%s", msg);
    return 1;
}

/* ---- the file --------------------------------------------------------- */

/* cfg->path and cfg->dir from an absolute path (real). */
static void set_path(struct config *cfg, const char *real)
{
    char dir[PATH_MAX];
    char *slash;

    snprintf(dir, sizeof(dir), "%s", real);
    slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir ? 1 : 0] = '\0';
    cfg->path = xstrdup(real);
    cfg->dir = xstrdup(dir);
}

/* The whole file into cfg->text (at most CONFIG_FILE_MAX bytes): what is
 * parsed, and what the master passes on to the roles, are one read. */
static bool read_text(struct loader *ld, FILE *fp)
{
    struct config *cfg = ld->cfg;
    size_t n;

    cfg->text = xmalloc(CONFIG_FILE_MAX + 1);
    n = fread(cfg->text, 1, CONFIG_FILE_MAX + 1, fp);
    if (ferror(fp))
        return loader_error(ld, 0, "read error: %s", strerror(errno));
    if (n > CONFIG_FILE_MAX)
        return loader_error(ld, 0, "larger than %u bytes", CONFIG_FILE_MAX);
    cfg->text = xrealloc(cfg->text, n + 1);
    cfg->text[n] = '\0';
    cfg->text_len = n;
    return true;
}

static bool open_file(struct loader *ld)
{
    char real[PATH_MAX];
    struct stat st;
    FILE *fp = fopen(ld->path, "re");
    bool ok;

    if (!fp)
        return loader_error(ld, 0, "cannot open: %s", strerror(errno));
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode))
        ok = loader_error(ld, 0, "not a regular file");
    else if (!realpath(ld->path, real))
        ok = loader_error(ld, 0, "cannot resolve path: %s", strerror(errno));
    else
        ok = read_text(ld, fp);
    fclose(fp);
    if (ok)
        set_path(ld->cfg, real);
    return ok;
}

/* A stream over cfg->text for inih. */
static bool open_text(struct loader *ld)
{
    ld->fp = fmemopen(ld->cfg->text, ld->cfg->text_len, "r");
    if (!ld->fp)
        return loader_error(ld, 0, "cannot read: %s", strerror(errno));
    return true;
}

static bool parse_file(struct loader *ld)
{
    int rc = ini_parse_stream(read_line, ld, on_key, ld);

    if (ferror(ld->fp))
        return loader_error(ld, 0, "read error: %s", strerror(errno));
    if (rc > 0 && (!ld->failed || rc < ld->err_line)) {
        ld->failed = false;
        return loader_error(ld, rc, "syntax error: expected 'key = value', "
                            "'[section]' or a comment");
    }
    if (rc < 0)
        return loader_error(ld, 0, "parse error %d", rc);
    return !ld->failed;
}

/* Parse cfg->text; on error fills err with "PATH:LINE: message". */
static struct config *finish_load(struct loader *ld, bool ok, char *err, size_t errsize)
{
    struct config *cfg = ld->cfg;

    ok = ok && open_text(ld) && parse_file(ld) && config_finish(ld);
    if (ld->fp)
        fclose(ld->fp);
    if (!ok) {
        if (ld->err_line > 0)
            snprintf(err, errsize, "%s:%d: %s", ld->path, ld->err_line, ld->err);
        else
            snprintf(err, errsize, "%s: %s", ld->path, ld->err);
        config_free(cfg);
        cfg = NULL;
    }
    free(ld);
    return cfg;
}

struct config *config_load(const char *path, char *err, size_t errsize)
{
    struct loader *ld = xcalloc(1, sizeof(*ld));

    ld->cfg = xcalloc(1, sizeof(*ld->cfg));
    ld->path = path;
    return finish_load(ld, open_file(ld), err, errsize);
}

struct config *config_load_copy(const char *text, size_t len, const char *path,
                                const char *hostname, char *err, size_t errsize)
{
    struct loader *ld = xcalloc(1, sizeof(*ld));
    struct config *cfg = xcalloc(1, sizeof(*cfg));

    ld->cfg = cfg;
    ld->path = path;
    ld->hostname = hostname;
    cfg->replayed = true;
    cfg->text = xmalloc(len + 1);
    memcpy(cfg->text, text, len);
    cfg->text[len] = '\0';
    cfg->text_len = len;
    if (path[0] != '/' || len > CONFIG_FILE_MAX)
        return finish_load(ld, loader_error(ld, 0, "not a copy of a loaded config"),
                           err, errsize);
    set_path(cfg, path);
    return finish_load(ld, true, err, errsize);
}

/* ---- the loaded config ------------------------------------------------ */

static void free_section(enum section_kind kind, void *base)
{
    const struct section_def *def = config_section(kind);

    for (size_t i = 0; i < def->count; i++)
        config_value_free(&def->settings[i], base);
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    free_section(SECTION_SERVER, cfg);
    for (size_t i = 0; i < cfg->listener_count; i++)
        free_section(SECTION_LISTENER, &cfg->listeners[i]);
    for (size_t i = 0; i < cfg->domain_count; i++)
        free_section(SECTION_DOMAIN, &cfg->domains[i]);
    free_section(SECTION_TLS, &cfg->tls);
    free_section(SECTION_QUEUE, &cfg->queue);
    free_section(SECTION_RELAY, &cfg->relay);
    free_section(SECTION_TLSRPT, &cfg->tlsrpt);
    free_section(SECTION_SUBMISSION, &cfg->submission);
    free_section(SECTION_METRICS, &cfg->metrics);
    for (size_t i = 0; i < cfg->destination_count; i++)
        free_section(SECTION_DESTINATION, &cfg->destinations[i]);
    for (size_t i = 0; i < cfg->milter_count; i++)
        free_section(SECTION_MILTER, &cfg->milters[i]);
    free(cfg->path);
    free(cfg->dir);
    free(cfg->text);
    free(cfg);
}

size_t config_local_owners(const struct config *cfg, const char *owners[CONFIG_MAX_DOMAINS])
{
    size_t n = 0;

    for (size_t i = 0; i < cfg->domain_count; i++) {
        const char *o = cfg->domains[i].owner;
        /* an LMTP domain has no Maildir: the lmtp role delivers it */
        bool seen = strcmp(o, cfg->queue_user) == 0 || cfg->domains[i].deliver != NULL;

        for (size_t k = 0; k < n && !seen; k++)
            seen = strcmp(owners[k], o) == 0;
        if (!seen)
            owners[n++] = o;
    }
    return n;
}

int config_owner_slot(const struct config *cfg, const struct domain_config *dc)
{
    const char *owners[CONFIG_MAX_DOMAINS];
    size_t n = config_local_owners(cfg, owners);

    for (size_t k = 0; k < n; k++) {
        if (strcmp(owners[k], dc->owner) == 0)
            return (int)k;
    }
    return -1;
}

void config_maildir_root(const char *tmpl, char *out, size_t size)
{
    const char *brace;
    size_t len;

    if (size == 0)
        return;
    if (tmpl == NULL) {                 /* deliver = lmtp: no Maildir */
        out[0] = '\0';
        return;
    }
    brace = strchr(tmpl, '{');
    len = brace ? (size_t)(brace - tmpl) : strlen(tmpl);
    while (len > 1 && tmpl[len - 1] != '/')
        len--;
    if (len > 1)
        len--;                          /* the '/' itself */
    if (len >= size)
        len = size - 1;
    memcpy(out, tmpl, len);
    out[len] = '\0';
}

const struct domain_config *config_find_domain(const struct config *cfg,
                                               const char *domain)
{
    for (size_t i = 0; i < cfg->domain_count; i++)
        if (strcasecmp(cfg->domains[i].name, domain) == 0)
            return &cfg->domains[i];
    return NULL;
}

bool config_is_relay_domain(const struct config *cfg, const char *domain)
{
    for (size_t i = 0; i < cfg->relay.relay_domain_count; i++)
        if (strcmp(cfg->relay.relay_domains[i], domain) == 0)
            return true;
    return false;
}

const struct milter_config *config_find_milter(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->milter_count; i++)
        if (strcmp(cfg->milters[i].name, name) == 0)
            return &cfg->milters[i];
    return NULL;
}

bool config_uses_milters(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->listener_count; i++)
        if (cfg->listeners[i].milter_count)
            return true;
    return cfg->queue.sendmail_milter_count > 0;
}

char *const *config_milters_for(const struct config *cfg, const char *who, size_t *count)
{
    if (strcmp(who, CONFIG_SENDMAIL_MILTERS) == 0) {
        *count = cfg->queue.sendmail_milter_count;
        return cfg->queue.sendmail_milters;
    }
    for (size_t i = 0; i < cfg->listener_count; i++) {
        if (strcmp(cfg->listeners[i].name, who) == 0) {
            *count = cfg->listeners[i].milter_count;
            return cfg->listeners[i].milters;
        }
    }
    *count = 0;
    return NULL;
}

bool config_milters_at(const struct config *cfg, const char *who, enum milter_when when)
{
    size_t n;
    char *const *names = config_milters_for(cfg, who, &n);

    for (size_t i = 0; i < n; i++) {
        const struct milter_config *m = config_find_milter(cfg, names[i]);

        if (m && m->stage == (int)when)
            return true;
    }
    return false;
}

const struct destination_config *config_find_destination(const struct config *cfg,
                                                         const char *name)
{
    for (size_t i = 0; i < cfg->destination_count; i++)
        if (strcasecmp(cfg->destinations[i].name, name) == 0)
            return &cfg->destinations[i];
    return NULL;
}
