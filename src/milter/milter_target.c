/*
 * milter_target.c - milter_target_parse (see milter_conv.h): a milter
 * socket as the config reads it (config_parse_milter_socket, the one
 * grammar), converted to the milter client's struct milter_target.
 * Apart from milter_conv.c because config.h and milter_proto.h both
 * name an enum milter_stage.
 * Trusts: nothing in spec (it comes from a config file or a test's
 * command line).
 */
#include "milter/milter_conv.h"

#include <stdio.h>
#include <string.h>

#include "config/config.h"

bool milter_target_parse(const char *spec, struct milter_target *t, char *err,
                         size_t errsize)
{
    struct lmtp_target lt;
    char why[200];

    memset(t, 0, sizeof(*t));
    if (!config_parse_milter_socket(spec, &lt, why, sizeof(why))) {
        snprintf(err, errsize, "milter socket %s: %s", spec, why);
        return false;
    }
    if (strlen(lt.path) >= sizeof(t->path) || strlen(lt.host) >= sizeof(t->host)) {
        snprintf(err, errsize, "milter socket %s: too long", spec);
        return false;
    }
    t->is_unix = lt.unix_socket;
    memcpy(t->path, lt.path, strlen(lt.path) + 1);
    memcpy(t->host, lt.host, strlen(lt.host) + 1);
    t->port = (uint16_t)lt.port;
    return true;
}
