/*
 * Allocation of large buffers (tensor bytes, weights as doubles,
 * activations). A fold moves every byte of the model through fresh memory,
 * and with 4 KiB pages the kernel's page faults cost more than the copying
 * itself. These functions are malloc and calloc that also ask the kernel
 * for transparent huge pages on the part of a large block that covers
 * whole 2 MiB pages (madvise, where the kernel allows it); the memory is
 * released with free() as usual.
 */
#ifndef BNF_MEM_H
#define BNF_MEM_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

void *bnf_malloc_large(size_t size);

/* Zero-filled, n * size bytes (0 on overflow or no memory gives NULL). */
void *bnf_calloc_large(size_t n, size_t size);

/* Set the C library's allocator up for bnfold's pattern: blocks of a few
 * megabytes freed and allocated again, node after node. Call once, first. */
void bnf_mem_init(void);

/* Prepare the heap for about `bytes` of allocations to come (an unpacked
 * model): grow it once by that much with huge pages advised and keep the
 * space for the allocations of the run, which then fault in 2 MiB at a
 * time (up to 960 MiB). Only a hint: it does nothing outside glibc or when
 * memory is short. */
void bnf_heap_reserve(size_t bytes);

/* For protobuf-c's unpack: bnf_malloc_large and free. A tree unpacked with
 * it may be freed with a NULL allocator. */
extern ProtobufCAllocator bnf_large_allocator;

#endif
