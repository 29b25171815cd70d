/* cli: what the smsrules commands (serve, check, backup, ...) share in
 * reading their command line. */
#ifndef SR_CLI_H
#define SR_CLI_H

/* Prints "smsrules: " and fmt (with its one %s, arg) to stderr, then a blank
 * line and usage. Returns 1, the exit code of a usage error. */
int sr_cli_usage_error(const char *usage, const char *fmt, const char *arg);

#endif
