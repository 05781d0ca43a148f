/* Reading a command's input file ("-" is standard input) with a bound on its size. */
#ifndef DATAMART_CTL_INPUT_H
#define DATAMART_CTL_INPUT_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler.h"

/* how standard input is named in output */
#define CTL_INPUT_STDIN_NAME "<stdin>"

/* A reusable buffer: data holds what the last read returned. */
struct ctl_input {
    char *data;
    size_t cap;
};

/*
 * Read at most limit bytes of path ("-": standard input) into in, growing it as needed; *len is
 * how many. Returns false with errno set on failure.
 */
bool ctl_input_read(const char *path, size_t limit, struct ctl_input *in, size_t *len) DM_MUSTCHECK;
void ctl_input_release(struct ctl_input *in);
/* path fit for one output line ("-" is CTL_INPUT_STDIN_NAME, control bytes '?'); NULL on OOM */
char *ctl_input_display_name(const char *path) DM_MUSTCHECK;

#endif
