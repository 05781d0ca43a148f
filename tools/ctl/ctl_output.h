/* datamartctl's standard output: a rendered strbuf written and flushed, with one exit policy. */
#ifndef DATAMART_CTL_OUTPUT_H
#define DATAMART_CTL_OUTPUT_H

#include <stdbool.h>

struct strbuf;

/*
 * Write sb to stdout and flush it. True when written; false when output must stop: *status is
 * kept when the reader went away (EPIPE: `| head` is a normal end), and becomes CTL_EXIT_USAGE
 * when sb ran out of memory or stdout failed otherwise (said on stderr). A command that writes
 * once just returns *status; one that writes in a loop stops on false.
 */
bool ctl_output_write(const struct strbuf *sb, int *status);

#endif
