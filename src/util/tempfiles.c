/* Temporary files removed when a signal ends the run (see tempfiles.h). */
#include "util/tempfiles.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#define TEMP_SLOTS    8
#define TEMP_PATH_MAX 4096

static char temp_paths[TEMP_SLOTS][TEMP_PATH_MAX];
static volatile sig_atomic_t temp_used[TEMP_SLOTS];

int bnf_temp_track(const char *path)
{
	size_t len = strlen(path);
	int i;

	if (len >= TEMP_PATH_MAX)
		return -1;
	for (i = 0; i < TEMP_SLOTS; i++)
		if (!temp_used[i]) {
			/* The path is complete before the slot counts as used, so
			 * a handler never sees half of it. */
			memcpy(temp_paths[i], path, len + 1);
			temp_used[i] = 1;
			return i;
		}
	return -1;
}

void bnf_temp_untrack(int slot)
{
	if (slot >= 0 && slot < TEMP_SLOTS)
		temp_used[slot] = 0;
}

void bnf_temp_remove_all(void)
{
	int i;

	for (i = 0; i < TEMP_SLOTS; i++)
		if (temp_used[i])
			unlink(temp_paths[i]);
}
