/*
 * milter_types.c - life cycle of a milter outcome (see milter_types.h).
 * Trusts: its caller.
 */
#include "milter/milter_types.h"

#include <stdlib.h>
#include <string.h>

void milter_outcome_init(struct milter_outcome *o)
{
    memset(o, 0, sizeof(*o));
    o->verdict = MILTER_CONTINUE;
}

void milter_outcome_clear(struct milter_outcome *o)
{
    for (size_t i = 0; i < o->edit_count; i++) {
        free(o->edits[i].value);
        free(o->edits[i].args);
    }
    free(o->body);
    milter_outcome_init(o);
}
