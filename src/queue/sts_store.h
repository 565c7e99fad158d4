/*
 * sts_store.h - the MTA-STS policy cache on disk, owned by the queue
 * process (the delivery process that fetches policies has no file
 * access): spool/sts/DOMAIN, one file per policy domain in the
 * sts_codec.h form (docs/SPOOL.md).
 *
 * Records arrive from the delivery process (IPC_STS_STORE) and are
 * untrusted: each is decoded and checked (sts_record_decode: grammar,
 * lengths, the body re-parsed as a policy) before it is written, and
 * written atomically (a temporary file, fsync, rename, fsync of the
 * folder). When a delivery process starts, every unexpired file is
 * checked again and sent to it (IPC_STS_CACHE); expired or damaged
 * files are removed.
 *
 * Trusts: the spool folder; nothing in a record.
 */
#ifndef SEALPOST_QUEUE_STS_STORE_H
#define SEALPOST_QUEUE_STS_STORE_H

#include <stdbool.h>
#include <stddef.h>

#define STS_STORE_MAX_FILES 1024    /* policies kept (the delivery cache's size) */

struct sts_store;

/* Opens (creating) SPOOL/sts. NULL with err on failure. */
struct sts_store *sts_store_open(const char *spool, char *err, size_t errsize);
void sts_store_close(struct sts_store *st);

/* Check and write one record from the delivery process. False with err
 * when it is refused (nothing written). */
bool sts_store_put(struct sts_store *st, const void *data, size_t len, char *err,
                   size_t errsize);

/* Send every unexpired, valid policy on channel as IPC_STS_CACHE (blocking
 * sends: the delivery process reads its channel without ever blocking).
 * Returns the number sent, -1 when the channel broke. */
int sts_store_send_all(struct sts_store *st, int channel);

#endif
