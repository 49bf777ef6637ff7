/*
 * Worker threads: one limit on how many bnfold starts, and one way to
 * start them so that the signals the command line handles (interrupt,
 * termination, hang-up) always reach the main thread.
 */
#ifndef BNF_THREAD_H
#define BNF_THREAD_H

#include <pthread.h>

/* The most worker threads any part of bnfold uses at once (-j's limit). */
#define BNF_MAX_THREADS 64

/* pthread_create with SIGINT, SIGTERM and SIGHUP blocked in the new
 * thread (it inherits the mask it is created with). Synchronous signals
 * such as SIGBUS stay unblocked: a fault must reach its own handler.
 * Returns 0 or pthread_create's error. */
int bnf_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg);

/* fn(arg) on `threads` threads at once (at most BNF_MAX_THREADS): this one
 * and threads - 1 started by bnf_thread_start, or fewer when one cannot be
 * started. fn takes its work from a queue in arg, so this thread finishes
 * whatever no other took. Returns once every one has returned. */
void bnf_thread_team(int threads, void *(*fn)(void *), void *arg);

#endif
