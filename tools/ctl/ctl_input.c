/* Bounded reads of a command's input (see ctl_input.h). */
#include "ctl_input.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIRST_CAP (64 * 1024)

bool ctl_input_read(const char *path, size_t limit, struct ctl_input *in, size_t *len)
{
    bool is_stdin = strcmp(path, "-") == 0;
    int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    bool ok = true;

    *len = 0;
    if (fd < 0)
        return false;
    while (*len < limit) {
        ssize_t n;
        size_t room;

        if (*len == in->cap) {
            size_t cap = in->cap ? in->cap * 2 : FIRST_CAP;
            char *p;

            if (cap > limit)
                cap = limit;
            p = realloc(in->data, cap);
            if (!p) {
                errno = ENOMEM;
                ok = false;
                break;
            }
            in->data = p;
            in->cap = cap;
        }
        /* the buffer may be larger than this read's limit */
        room = (in->cap < limit ? in->cap : limit) - *len;
        n = read(fd, in->data + *len, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ok = false;
            break;
        }
        if (n == 0)
            break;
        *len += (size_t)n;
    }
    if (!is_stdin) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return ok;
}

void ctl_input_release(struct ctl_input *in)
{
    free(in->data);
    in->data = NULL;
    in->cap = 0;
}

char *ctl_input_display_name(const char *path)
{
    char *name = strdup(strcmp(path, "-") == 0 ? CTL_INPUT_STDIN_NAME : path);

    for (char *p = name; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return name;
}
