/*
 * sendmail.h - `sealpost sendmail` and the binary run as `sendmail`
 * (sendmail.c): submit a message from a local program through the
 * maildrop. Trusts its arguments and config file only.
 */
#ifndef SEALPOST_SENDMAIL_SENDMAIL_H
#define SEALPOST_SENDMAIL_SENDMAIL_H

#define SENDMAIL_DEFAULT_CONFIG "/etc/sealpost/sealpost.conf"

/* argv[0] is the command name; the options and recipients follow.
 * Returns (or exits with) a sysexits.h code. */
int sendmail_main(int argc, char **argv);

#endif
