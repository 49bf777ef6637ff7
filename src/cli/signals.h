/*
 * The process's signals (signals.c): a process that reads one model
 * removes its temporary files when interrupted and names the file a
 * SIGBUS came from; the parent of a many-model run first passes the
 * signal on to its worker processes.
 */
#ifndef BNF_CLI_SIGNALS_H
#define BNF_CLI_SIGNALS_H

#include <sys/types.h>

/* The handlers of a process that reads input ("-" or NULL: none named). */
void cli_signals_install(const char *input);

/* The handlers of a many-model run's parent: SIGINT, SIGTERM and SIGHUP
 * go on to every worker registered below, then end the parent. */
void cli_signals_install_parent(void);

/* Register a worker process (up to BNF_MAX_THREADS at once), and forget it
 * once it has been reaped. */
void cli_signals_add_worker(pid_t pid);
void cli_signals_remove_worker(pid_t pid);

#endif
