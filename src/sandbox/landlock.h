/*
 * landlock.h - Landlock (Linux 5.13+) for the roles that need no file
 * system: the smtpd workers and the delivery process; and for the local
 * delivery processes, which need their Maildir roots and nothing else. Feature-detected:
 * on a kernel without Landlock nothing changes (the chroot and the
 * seccomp filter still apply) and the log says so.
 *
 * Where the chroot cannot be used (sealpost started without root, as by
 * `make run` and the tests), this is what keeps those processes from
 * opening any file: every file-system right Landlock knows is handled,
 * and no path is allowed. Descriptors opened before (listening sockets,
 * message files passed by the queue) keep working. Trusts nothing.
 */
#ifndef SEALPOST_SANDBOX_LANDLOCK_H
#define SEALPOST_SANDBOX_LANDLOCK_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Deny the calling process (all its threads must be started after, or
 * be this one) every new file-system access; with deny_tcp also binding
 * and connecting TCP sockets where the kernel supports it (ABI 4+).
 * Returns the Landlock ABI version applied, 0 when the kernel has none.
 * Fatal if Landlock is present but cannot be applied.
 */
int landlock_deny_files(const char *role, bool deny_tcp);

/*
 * The same, but beneath each of paths[0..n) (folders that exist) allow
 * what Maildir delivery needs: read and write files, list folders, make
 * folders and regular files, remove files, rename within (REFER) and
 * truncate. Nothing else anywhere: no execute, no devices, sockets,
 * FIFOs or symlinks, no removing folders; TCP bind and connect denied
 * where the kernel supports it. A path that cannot be opened is logged
 * and left out. Returns the ABI version applied, 0 without Landlock.
 */
int landlock_allow_beneath(const char *role, const char *const *paths, size_t n);

#endif
