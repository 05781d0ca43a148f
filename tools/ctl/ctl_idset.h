/*
 * A set of ids (job ids) numbered in the order they were added, for finding repeats in an
 * enqueue and matching outcomes in a wait without a linear search.
 */
#ifndef DATAMART_CTL_IDSET_H
#define DATAMART_CTL_IDSET_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler.h"

struct ctl_idset;

struct ctl_idset *ctl_idset_create(void) DM_MUSTCHECK;
void ctl_idset_free(struct ctl_idset *set);

/*
 * Add len bytes at s; *index gets its number (the earlier one when it was already there).
 * Returns 1 when added, 0 when already there, -1 when out of memory.
 */
int ctl_idset_add(struct ctl_idset *set, const char *s, size_t len, size_t *index) DM_MUSTCHECK;
/* true and its number in *index when s is in the set */
bool ctl_idset_find(const struct ctl_idset *set, const char *s, size_t len, size_t *index);
size_t ctl_idset_count(const struct ctl_idset *set);
/* the id numbered index, NUL-terminated */
const char *ctl_idset_get(const struct ctl_idset *set, size_t index);

#endif
