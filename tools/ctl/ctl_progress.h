/* A text progress bar: "[##########----------]  50% 100/200". */
#ifndef DATAMART_CTL_PROGRESS_H
#define DATAMART_CTL_PROGRESS_H

struct strbuf;

#define CTL_PROGRESS_WIDTH 30

/* done of total (total 0 shows an empty bar); no newline */
void ctl_progress_bar(struct strbuf *sb, unsigned long long done, unsigned long long total);

#endif
