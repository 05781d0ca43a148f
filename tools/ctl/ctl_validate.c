/*
 * datamartctl validate FILE...: offline checks of Create Datamart payloads. Prints FILE: ok, or
 * one FILE: PATH: MESSAGE line per problem; exit 0 all valid, 1 any invalid, 2 usage or I/O.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctl.h"
#include "ctl_commands.h"
#include "ctl_input.h"
#include "validator.h"

/* Prints FILE: ok or one FILE: PATH: MESSAGE line per problem; returns the exit status. */
static int validate_one(const char *path, size_t max_bytes, struct ctl_input *in)
{
    char *name = ctl_input_display_name(path);
    struct validator_result *r = NULL;
    size_t len;
    int status = CTL_EXIT_OK;

    if (!name) {
        perror("datamartctl");
        return CTL_EXIT_USAGE;
    }
    /* one byte over the limit is enough for the validator to call it too large */
    if (!ctl_input_read(path, max_bytes + 1, in, &len)) {
        fprintf(stderr, "datamartctl: %s: %s\n", name, strerror(errno));
        status = CTL_EXIT_USAGE;
    } else if (!(r = validator_check(in->data, len, max_bytes))) {
        fprintf(stderr, "datamartctl: %s: out of memory\n", name);
        status = CTL_EXIT_USAGE;
    } else if (validator_result_count(r) == 0) {
        printf("%s: ok\n", name);
    } else {
        for (size_t i = 0; i < validator_result_count(r); i++)
            printf("%s: %s: %s\n", name, validator_result_path(r, i),
                   validator_result_message(r, i));
        status = CTL_EXIT_FAILED;
    }
    validator_result_free(r);
    free(name);
    return status;
}

int ctl_validate_run(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_input in = {0};
    int status = CTL_EXIT_OK;
    int first = 1;

    if (first < argc && strcmp(argv[first], "--") == 0)
        first++;
    else
        for (int i = first; i < argc; i++)
            if (argv[i][0] == '-' && argv[i][1] != '\0') {
                fprintf(stderr, "datamartctl validate: unknown option %s\n", argv[i]);
                return CTL_EXIT_USAGE;
            }
    if (first == argc) {
        fprintf(stderr, "Usage: datamartctl validate FILE...\n");
        return CTL_EXIT_USAGE;
    }
    for (int i = first; i < argc; i++) {
        int s = validate_one(argv[i], ctl->cfg->max_payload_bytes, &in);
        if (s > status)
            status = s;
    }
    ctl_input_release(&in);
    return status;
}
