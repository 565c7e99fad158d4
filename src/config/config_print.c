/*
 * config_print.c - print every effective setting, defaults included, as
 * an INI file that config_load accepts again (`sealpost check`).
 *
 * Trusts the config to have come from config_load: values passed their
 * checks, so they hold no control characters or line breaks. A line that
 * would exceed the reader's limit is still printed, after a comment that
 * says so, rather than silently changed.
 */
#include "config/config_internal.h"

#include <limits.h>
#include <string.h>

#define VALUE_MAX (PATH_MAX + 64)

static void print_kv(FILE *out, const char *name, const char *value, const char *tail)
{
    size_t len = strlen(name) + 3 + strlen(value) + strlen(tail);

    if (len > CONFIG_LINE_MAX - 1)
        fprintf(out, "# warning: the next line is longer than %d characters, "
                "which config_load refuses\n", CONFIG_LINE_MAX - 1);
    fprintf(out, "%s = %s%s\n", name, value, tail);
}

/* "a, b, c" (durations: "5m 10m 1h") on one line when it fits, else one
 * item per indented line. */
static void print_comma_list(FILE *out, const struct setting *s, const void *base,
                             size_t n)
{
    char joined[CONFIG_LINE_MAX * 2], item[VALUE_MAX];
    const char *sep = s->type == ST_DURATIONS ? " " : ", ";
    size_t used = 0;

    joined[0] = '\0';
    for (size_t i = 0; i < n && used < sizeof(joined); i++) {
        config_value_format(s, base, i, item, sizeof(item));
        used += (size_t)snprintf(joined + used, sizeof(joined) - used, "%s%s",
                                 i ? sep : "", item);
    }
    if (strlen(s->name) + 3 + used <= CONFIG_LINE_MAX - 1) {
        print_kv(out, s->name, joined, "");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        config_value_format(s, base, i, item, sizeof(item));
        if (i == 0)
            print_kv(out, s->name, item, n > 1 ? "," : "");
        else
            fprintf(out, "    %s%s\n", item, i + 1 < n ? "," : "");
    }
}

static void print_setting(FILE *out, const struct setting *s, const void *base)
{
    size_t n = config_value_count(s, base);
    enum list_style style = config_value_list_style(s);
    char value[VALUE_MAX];

    if (n == 0 && style == LIST_COMMA) {
        fprintf(out, "%s =\n", s->name);
    } else if (n == 0) {
        fprintf(out, "# %s is not set\n", s->name);
    } else if (style == LIST_COMMA) {
        print_comma_list(out, s, base, n);
    } else {
        for (size_t i = 0; i < n; i++) {
            config_value_format(s, base, i, value, sizeof(value));
            print_kv(out, s->name, value, "");
        }
    }
}

static void print_section(FILE *out, enum section_kind kind, const char *name,
                          const void *base)
{
    const struct section_def *def = config_section(kind);
    char label[CONFIG_LINE_MAX + 2];

    config_section_label(def, name, label, sizeof(label));
    fprintf(out, "\n%s\n", label);
    for (size_t i = 0; i < def->count; i++)
        print_setting(out, &def->settings[i], base);
}

/* The path in a comment, with anything unprintable shown as '?'. */
static void print_header(FILE *out, const char *path)
{
    fputs("# sealpost effective configuration, loaded from ", out);
    for (const char *p = path; *p; p++)
        fputc((unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p, out);
    fputc('\n', out);
}

void config_print(const struct config *cfg, FILE *out)
{
    print_header(out, cfg->path ? cfg->path : "(unknown)");
    print_section(out, SECTION_SERVER, "", cfg);
    for (size_t i = 0; i < cfg->listener_count; i++)
        print_section(out, SECTION_LISTENER, cfg->listeners[i].name, &cfg->listeners[i]);
    for (size_t i = 0; i < cfg->domain_count; i++)
        print_section(out, SECTION_DOMAIN, cfg->domains[i].name, &cfg->domains[i]);
    print_section(out, SECTION_TLS, "", &cfg->tls);
    print_section(out, SECTION_QUEUE, "", &cfg->queue);
    print_section(out, SECTION_RELAY, "", &cfg->relay);
    print_section(out, SECTION_SUBMISSION, "", &cfg->submission);
    print_section(out, SECTION_METRICS, "", &cfg->metrics);
    for (size_t i = 0; i < cfg->destination_count; i++)
        print_section(out, SECTION_DESTINATION, cfg->destinations[i].name,
                      &cfg->destinations[i]);
    print_section(out, SECTION_TLSRPT, "", &cfg->tlsrpt);
    for (size_t i = 0; i < cfg->milter_count; i++)
        print_section(out, SECTION_MILTER, cfg->milters[i].name, &cfg->milters[i]);
}
