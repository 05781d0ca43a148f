#include "ctl_output.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "strbuf.h"

bool ctl_output_write(const struct strbuf *sb, int *status)
{
    if (sb->failed) {
        fputs("datamartctl: out of memory\n", stderr);
        *status = CTL_EXIT_USAGE;
        return false;
    }
    if (fwrite(sb->data, 1, sb->len, stdout) == sb->len && fflush(stdout) == 0)
        return true;
    if (errno == EPIPE)
        return false;
    fprintf(stderr, "datamartctl: writing to stdout: %s\n", strerror(errno));
    *status = CTL_EXIT_USAGE;
    return false;
}
