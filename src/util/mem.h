/*
 * Memory for tensors. Large buffers (new weights, activations) come from
 * malloc and calloc that also ask the kernel for transparent huge pages on
 * the whole 2 MiB pages of the block (madvise, where the kernel allows it),
 * since page faults cost more than the copying itself; they are released
 * with free() as usual. Tensors may also borrow their bytes from a model
 * file (model.c): those ranges are registered here, and every tree is
 * freed through bnf_large_allocator, whose free leaves them alone.
 */
#ifndef BNF_MEM_H
#define BNF_MEM_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Borrowed bytes are read-only: a read-only mapping of the model file, or
 * the buffer standard input was read into, which the tree only points into.
 * protobuf-c's bytes fields have no const, so a tree that borrows must hold
 * them as uint8_t *: this is the one place where the const is dropped.
 * Writing through the result is a bug (on a mapping, a fault): a fold
 * replaces a tensor's raw_data, it never writes into it. */
static inline uint8_t *bnf_mem_borrowed_field(const uint8_t *bytes)
{
	return (uint8_t *)(uintptr_t)bytes;
}

void *bnf_malloc_large(size_t size);

/* Zero-filled, n * size bytes (0 on overflow or no memory gives NULL). */
void *bnf_calloc_large(size_t n, size_t size);

/* Set the C library's allocator up for bnfold's pattern: blocks of a few
 * megabytes freed and allocated again, node after node. Call once, first. */
void bnf_mem_init(void);

/* Memory a tree may point into without owning it: the bytes of a model
 * file that tensors' raw_data borrows (model.c). bnf_free ignores pointers
 * into these ranges. At most a few are registered at once. file_backed:
 * a private mapping of a file, whose pages bnf_free_sized may drop (they
 * read back from the file); other memory is never dropped, since a second
 * unpacking may still be reading it. */
int bnf_mem_borrow(const void *start, size_t len, int file_backed);
/* Undo one bnf_mem_borrow of start (the same bytes may be registered by
 * several trees). */
void bnf_mem_unborrow(const void *start);

/* free(), except for borrowed memory (see bnf_mem_borrow). */
void bnf_free(void *p);

/* free(p), or for borrowed bytes of a file mapping nothing needs any more,
 * drop the whole pages among p's len bytes from memory (they read back
 * from the file if touched). For a tensor's data being replaced. */
void bnf_free_sized(void *p, size_t len);

/* For protobuf-c: bnf_malloc_large and bnf_free. Every tree and subtree
 * bnfold frees goes through it, since its raw_data may be borrowed. */
extern ProtobufCAllocator bnf_large_allocator;

#endif
