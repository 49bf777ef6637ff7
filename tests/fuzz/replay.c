/*
 * The plain driver of a fuzz target: runs LLVMFuzzerTestOneInput on every
 * file named on the command line, or found in a directory named there
 * (not recursively), so committed corpora run in every normal test build.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "io/model.h"

static int replay_file(const char *path, size_t *count)
{
	struct bnf_error err;
	uint8_t *buf = NULL;
	size_t len = 0;

	if (bnf_read_file(path, &buf, &len, &err) != BNF_OK) {
		fprintf(stderr, "replay: %s\n", err.msg);
		return 1;
	}
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	(*count)++;
	return 0;
}

static int replay_dir(const char *dir, size_t *count)
{
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, alphasort), i, rc = 0;

	if (n < 0) {
		perror(dir);
		return 1;
	}
	for (i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode))
			rc |= replay_file(path, count);
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	struct stat st;
	size_t count = 0;
	int i, rc = 0;

	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
			rc |= replay_dir(argv[i], &count);
		else
			rc |= replay_file(argv[i], &count);
	}
	printf("%s: replayed %zu inputs\n", argv[0], count);
	return rc;
}
