/*
 * role_start.h - the child side of a role start: `sealpost role NAME ...`
 * reads what the master passed (sandbox/role.h) and runs the role.
 * It lives with the master because it knows every role.
 */
#ifndef SEALPOST_MASTER_ROLE_START_H
#define SEALPOST_MASTER_ROLE_START_H

/* `sealpost role NAME ...` (argv[1] is "role"): read what the master
 * passed, then role_main. Returns the exit status (2 on a usage error,
 * as when someone runs it by hand). */
int role_run(int argc, char **argv);

#endif
