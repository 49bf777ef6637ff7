/* Large allocations with huge pages where offered, and the registry of
 * borrowed bytes (see mem.h). */
#include "util/mem.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#define HUGE_PAGE ((uintptr_t)2 << 20)

/* Smaller blocks cannot hold a whole huge page. */
#define LARGE_MIN ((size_t)HUGE_PAGE)

static void advise_huge(void *p, size_t size)
{
#if defined(MADV_HUGEPAGE) && !defined(BNF_NO_HUGE_PAGES)
	uintptr_t start = ((uintptr_t)p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
	uintptr_t end = ((uintptr_t)p + size) & ~(HUGE_PAGE - 1);

	/* Only a hint: a kernel without transparent huge pages says no, and
	 * the memory works the same. */
	if (end > start)
		(void)madvise((void *)start, end - start, MADV_HUGEPAGE);
#else
	(void)p;
	(void)size;
#endif
}

void *bnf_malloc_large(size_t size)
{
	void *p = malloc(size ? size : 1);
	if (p && size >= LARGE_MIN)
		advise_huge(p, size);
	return p;
}

void *bnf_calloc_large(size_t n, size_t size)
{
	void *p;

	if (n < LARGE_MIN / (size ? size : 1))
		return calloc(n ? n : 1, size ? size : 1);
	if (size && n > SIZE_MAX / size)
		return NULL;
	/* Advise before the first touch, so that the pages come in huge. */
	p = bnf_malloc_large(n * size);
	if (p)
		memset(p, 0, n * size);
	return p;
}

void bnf_mem_init(void)
{
#ifdef __GLIBC__
	/* The evaluator frees and allocates activations of a few megabytes per
	 * node. glibc would hand each to mmap and back, and every reuse would
	 * fault its pages in again (a fifth of a check's time): keep blocks
	 * below 32 MiB, the largest threshold glibc takes, in the heap, and
	 * keep the heap (trimming would also drop the huge-page advice). */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, INT_MAX);
#endif
}

#define BORROW_SLOTS 4

static struct {
	uintptr_t start, end;
	int file_backed;
} borrowed[BORROW_SLOTS];

int bnf_mem_borrow(const void *start, size_t len, int file_backed)
{
	int i;

	for (i = 0; i < BORROW_SLOTS; i++)
		if (borrowed[i].start == 0) {
			borrowed[i].start = (uintptr_t)start;
			borrowed[i].end = (uintptr_t)start + len;
			borrowed[i].file_backed = file_backed;
			return 0;
		}
	return -1;
}

void bnf_mem_unborrow(const void *start)
{
	int i;

	/* One registration: two trees may borrow the same bytes. */
	for (i = 0; i < BORROW_SLOTS; i++)
		if (borrowed[i].start == (uintptr_t)start) {
			borrowed[i].start = borrowed[i].end = 0;
			borrowed[i].file_backed = 0;
			return;
		}
}

void bnf_free(void *p)
{
	uintptr_t a = (uintptr_t)p;
	int i;

	for (i = 0; i < BORROW_SLOTS; i++)
		if (a >= borrowed[i].start && a < borrowed[i].end)
			return;
	free(p);
}

void bnf_free_sized(void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p, page = 4096, start, end;
	int i;

	for (i = 0; i < BORROW_SLOTS; i++)
		if (a >= borrowed[i].start && a < borrowed[i].end) {
			start = (a + page - 1) & ~(page - 1);
			end = (a + len) & ~(page - 1);
			if (borrowed[i].file_backed && end > start && a + len <= borrowed[i].end)
				(void)madvise((void *)start, end - start, MADV_DONTNEED);
			return;
		}
	free(p);
}

static void *large_alloc(void *data, size_t size)
{
	(void)data;
	return bnf_malloc_large(size);
}

static void large_free(void *data, void *p)
{
	(void)data;
	bnf_free(p);
}

ProtobufCAllocator bnf_large_allocator = {large_alloc, large_free, NULL};
