/*
 * The registry of mapped model files (source.h) and the kernel copy from
 * them. Registrations and removals happen on the thread that reads and
 * releases models, never while a write runs; writes only look up.
 */
#define _GNU_SOURCE /* copy_file_range */
#include "io/source.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define SOURCE_SLOTS 8

static struct {
	uintptr_t start, end;
	int fd; /* valid when end > start */
} sources[SOURCE_SLOTS];

void bnf_source_add(const void *start, size_t len, int fd)
{
	int i;

	for (i = 0; i < SOURCE_SLOTS; i++)
		if (sources[i].end == 0) {
			sources[i].start = (uintptr_t)start;
			sources[i].end = (uintptr_t)start + len;
			sources[i].fd = fd;
			return;
		}
	close(fd); /* full: writes of these bytes go through memory */
}

void bnf_source_remove(const void *start)
{
	int i;

	for (i = 0; i < SOURCE_SLOTS; i++)
		if (sources[i].end != 0 && sources[i].start == (uintptr_t)start) {
			close(sources[i].fd);
			sources[i].start = sources[i].end = 0;
			return;
		}
}

size_t bnf_source_copy(int out_fd, const uint8_t *data, size_t len)
{
	uintptr_t a = (uintptr_t)data;
	size_t done = 0;
	int i;

	for (i = 0; i < SOURCE_SLOTS; i++)
		if (sources[i].end != 0 && a >= sources[i].start && a < sources[i].end &&
		    len <= sources[i].end - a)
			break;
	if (i == SOURCE_SLOTS || out_fd < 0)
		return 0;
	while (done < len) {
		off_t off = (off_t)(a - sources[i].start + done);
		size_t want = len - done < (size_t)SSIZE_MAX ? len - done : (size_t)SSIZE_MAX;
		ssize_t n = copy_file_range(sources[i].fd, &off, out_fd, NULL, want, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* EXDEV, EINVAL, ENOSYS, a file cut short: the caller writes */
		done += (size_t)n;
	}
	return done;
}

void bnf_source_start_writeback(int out_fd, size_t off, size_t len)
{
	(void)sync_file_range(out_fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE);
}

int bnf_source_intact(const void *start)
{
	struct stat st;
	int i;

	for (i = 0; i < SOURCE_SLOTS; i++)
		if (sources[i].end != 0 && sources[i].start == (uintptr_t)start)
			return fstat(sources[i].fd, &st) != 0 ||
			       (uint64_t)st.st_size >= sources[i].end - sources[i].start;
	return 1;
}
