/*
 * tls_policy.c - which recipients stay reachable in cleartext (see
 * tls_policy.h). Comparison is ASCII case-insensitive on the unquoted
 * local part, as operators write "postmaster, abuse".
 */
#include "mail/tls_policy.h"

#include <stdio.h>
#include <string.h>

#include "mail/recipient.h"
#include "util/ascii.h"

bool tls_policy_cleartext_allowed(const struct listener_config *lc, const struct mailbox *mb)
{
    char local[ADDR_LOCAL_MAX + 1], domain[ADDR_DOMAIN_MAX + 1];
    char full[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2];

    if (mb->is_bare_postmaster) {
        snprintf(local, sizeof(local), "postmaster");
        domain[0] = '\0';
    } else {
        ascii_lower_copy(local, sizeof(local), mb->local_unquoted, strlen(mb->local_unquoted));
        ascii_lower_copy(domain, sizeof(domain), mb->domain, strlen(mb->domain));
    }
    snprintf(full, sizeof(full), "%s@%s", local, domain);
    for (size_t i = 0; i < lc->cleartext_count; i++) {
        const char *entry = lc->cleartext_recipients[i];

        if (strchr(entry, '@') ? strcmp(entry, full) == 0 : strcmp(entry, local) == 0)
            return true;
    }
    return false;
}
