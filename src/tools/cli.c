/* cli: see cli.h. */
#include "tools/cli.h"

#include <stdio.h>

int sr_cli_usage_error(const char *usage, const char *fmt, const char *arg) {
    fprintf(stderr, "smsrules: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", usage);
    return 1;
}
