/* A text progress bar (see ctl_progress.h). */
#include "ctl_progress.h"

#include "strbuf.h"

void ctl_progress_bar(struct strbuf *sb, unsigned long long done, unsigned long long total)
{
    unsigned long long shown = done > total ? total : done;
    unsigned long long filled = total ? shown * CTL_PROGRESS_WIDTH / total : 0;
    unsigned long long percent = total ? shown * 100 / total : 0;

    strbuf_puts(sb, "[");
    for (unsigned long long i = 0; i < CTL_PROGRESS_WIDTH; i++)
        strbuf_puts(sb, i < filled ? "#" : "-");
    strbuf_printf(sb, "] %3llu%% %llu/%llu", percent, done, total);
}
