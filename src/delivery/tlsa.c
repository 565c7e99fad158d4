/*
 * tlsa.c - parse TLSA rdata (RFC 6698 2.1) and keep the records SMTP can
 * use (RFC 7672 3.1); the rules are in tlsa.h.
 *
 * Trusts: nothing. Each rdata comes from the network as a pointer and a
 * length: no octet is read before the length is checked, and association
 * data is copied only when it fits TLSA_DATA_MAX.
 * Must never: call a record usable whose digest length does not match
 * its matching type, or keep more than TLSA_USABLE_MAX records.
 */
#include "delivery/tlsa.h"

#include <stdio.h>
#include <string.h>

static enum tlsa_verdict classify(const struct tlsa_record *rec)
{
    if (rec->usage != TLSA_USAGE_DANE_TA && rec->usage != TLSA_USAGE_DANE_EE)
        return TLSA_BAD_USAGE;
    if (rec->selector != TLSA_SELECTOR_CERT && rec->selector != TLSA_SELECTOR_SPKI)
        return TLSA_BAD_SELECTOR;
    switch (rec->mtype) {
    case TLSA_MTYPE_FULL:
        return rec->data_len >= 1 && rec->data_len <= TLSA_DATA_MAX ? TLSA_USABLE
                                                                     : TLSA_BAD_LENGTH;
    case TLSA_MTYPE_SHA256:
        return rec->data_len == 32 ? TLSA_USABLE : TLSA_BAD_LENGTH;
    case TLSA_MTYPE_SHA512:
        return rec->data_len == 64 ? TLSA_USABLE : TLSA_BAD_LENGTH;
    default:
        return TLSA_BAD_MTYPE;
    }
}

enum tlsa_verdict tlsa_parse_rdata(const uint8_t *rdata, size_t len, struct tlsa_record *rec)
{
    enum tlsa_verdict v;

    memset(rec, 0, sizeof(*rec));
    if (rdata == NULL || len < 4)
        return TLSA_MALFORMED;
    rec->usage = rdata[0];
    rec->selector = rdata[1];
    rec->mtype = rdata[2];
    rec->data_len = len - 3;
    v = classify(rec);
    if (v == TLSA_USABLE)
        memcpy(rec->data, rdata + 3, rec->data_len);    /* <= TLSA_DATA_MAX */
    return v;
}

bool tlsa_parse_rrset(const struct tlsa_rdata *rrs, size_t count, struct tlsa_set *out)
{
    memset(out, 0, sizeof(*out));
    if (rrs == NULL && count > 0) {
        snprintf(out->error, sizeof(out->error), "no TLSA records given");
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        struct tlsa_record *slot = out->usable_count < TLSA_USABLE_MAX
                                   ? &out->usable[out->usable_count] : NULL;
        struct tlsa_record scratch;
        /* Past the limit a usable record is classified without being kept;
         * scratch is big, so only this one is used. */
        enum tlsa_verdict v = tlsa_parse_rdata(rrs[i].data, rrs[i].len,
                                               slot != NULL ? slot : &scratch);

        switch (v) {
        case TLSA_USABLE:
            if (slot != NULL)
                out->usable_count++;
            else
                out->over_limit++;
            continue;
        case TLSA_BAD_USAGE:
            out->bad_usage++;
            break;
        case TLSA_BAD_SELECTOR:
            out->bad_selector++;
            break;
        case TLSA_BAD_MTYPE:
            out->bad_mtype++;
            break;
        case TLSA_BAD_LENGTH:
            out->bad_length++;
            break;
        case TLSA_MALFORMED:
        default:
            memset(out, 0, sizeof(*out));
            snprintf(out->error, sizeof(out->error),
                     "record %zu: malformed TLSA rdata (%zu octets, at least 4 needed)",
                     i + 1, rrs[i].len);
            return false;
        }
        out->unusable++;
        if (slot != NULL)
            memset(slot, 0, sizeof(*slot));  /* an unusable record is not kept */
    }
    return true;
}
