/*
 * The files models are mapped from, kept open while their bytes are in
 * use, so that a write of bytes that lie in one (an unchanged tensor, a
 * whole unchanged model) is made by the kernel from the file itself
 * (copy_file_range) rather than read through memory and written back.
 */
#ifndef BNF_SOURCE_H
#define BNF_SOURCE_H

#include <stddef.h>
#include <stdint.h>

/* Register start[0, len) as the mapping of the file open at fd, which the
 * registry then owns (closed by bnf_source_remove, or now when the table
 * is full). */
void bnf_source_add(const void *start, size_t len, int fd);

/* Forget the mapping at start and close its file; unknown start: nothing. */
void bnf_source_remove(const void *start);

/* Copy the leading bytes of data[0, len) to out_fd at its file offset by
 * copy_file_range, when data lies in a registered mapping and the kernel
 * can copy between the two files (same file system, regular files, no
 * O_APPEND). Returns how many bytes were copied that way (0 when none
 * could be); the caller writes the rest itself, from data + the result. */
size_t bnf_source_copy(int out_fd, const uint8_t *data, size_t len);

/* 0 when the file mapped at start is now shorter than its mapping (cut
 * short while in use: bytes read from it from now on are missing), else 1
 * (also for an unknown start). */
int bnf_source_intact(const void *start);

/* Start writing out[off, off + len) of the file open at out_fd to disk
 * without waiting (sync_file_range), so that the fsync at the end of a
 * long write waits less; errors are left to that fsync. */
void bnf_source_start_writeback(int out_fd, size_t off, size_t len);

#endif
