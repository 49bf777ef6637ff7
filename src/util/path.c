/*
 * Path helpers shared by every room that names a file in a message or
 * creates a file next to another.
 */
#include "util/path.h"

#include <string.h>

const char *bnf_path_label(const char *path, int writing)
{
	if (strcmp(path, "-") == 0)
		return writing ? "<stdout>" : "<stdin>";
	return path;
}

int bnf_path_folder(const char *path, char *out, size_t len)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (!slash) {
		if (len < 2)
			return -1;
		strcpy(out, ".");
		return 0;
	}
	n = (size_t)(slash - path);
	if (n == 0)
		n = 1; /* "/model.onnx": the root folder */
	if (n + 1 > len)
		return -1;
	memcpy(out, path, n);
	out[n] = '\0';
	return 0;
}
