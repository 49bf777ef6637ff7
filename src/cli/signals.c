/*
 * Signals (see signals.h): temporary files go with an interrupted run, a
 * SIGBUS on a mapped file cut short names that file, and the parent of
 * many worker processes passes an interrupt on to them before it ends.
 */
#include "cli/signals.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/path.h"
#include "util/tempfiles.h"
#include "util/thread.h"

/* What the SIGBUS handler needs, set before any file is mapped: the input
 * and its size then, to tell a file cut short from other faults. */
static const char *bus_input;
static off_t bus_input_size = -1;
static char bus_truncated_msg[512], bus_fault_msg[512];

/* A run ended by a signal takes its temporary files with it, then dies of
 * the signal as it would have. */
static void on_fatal_signal(int sig)
{
	bnf_temp_remove_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Tensor bytes are read from mappings of the model and data files: a file
 * cut short by someone else meanwhile faults on the missing pages. Only
 * stat and write here: both are async-signal-safe. */
static void on_bus_error(int sig)
{
	struct stat st;
	const char *msg = bus_fault_msg;

	(void)sig;
	bnf_temp_remove_all();
	if (bus_input && bus_input_size >= 0 && stat(bus_input, &st) == 0 &&
	    st.st_size < bus_input_size)
		msg = bus_truncated_msg;
	if (write(STDERR_FILENO, msg, strlen(msg)) < 0) {
		/* nothing more to do: the exit status says it */
	}
	_exit(EXIT_CODE_UNUSABLE);
}

static void handle(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

void cli_signals_install(const char *input)
{
	const char *label = input ? bnf_path_label(input, 0) : "an input file";
	struct stat st;

	snprintf(bus_truncated_msg, sizeof(bus_truncated_msg),
	         "bnfold: '%s' was truncated while bnfold was reading it; nothing written\n",
	         label);
	snprintf(bus_fault_msg, sizeof(bus_fault_msg),
	         "bnfold: a mapped file of '%s' could not be read (a data file cut short, or "
	         "a storage fault); nothing written\n",
	         label);
	if (input && strcmp(input, "-") != 0 && stat(input, &st) == 0 && S_ISREG(st.st_mode)) {
		bus_input = input;
		bus_input_size = st.st_size;
	}
	/* A closed pipe on stdout must be an error we report, not a silent
	 * death by signal. */
	handle(SIGPIPE, SIG_IGN);
	handle(SIGINT, on_fatal_signal);
	handle(SIGTERM, on_fatal_signal);
	handle(SIGHUP, on_fatal_signal);
	handle(SIGBUS, on_bus_error);
}

/* The worker processes of a many-model run, 0 where a slot is free:
 * written by the main loop, read by the handler. */
static volatile pid_t workers[BNF_MAX_THREADS];

void cli_signals_add_worker(pid_t pid)
{
	size_t i;

	for (i = 0; i < BNF_MAX_THREADS; i++)
		if (workers[i] == 0) {
			workers[i] = pid;
			return;
		}
}

void cli_signals_remove_worker(pid_t pid)
{
	size_t i;

	for (i = 0; i < BNF_MAX_THREADS; i++)
		if (workers[i] == pid)
			workers[i] = 0;
}

/* Each worker removes its own temporary files when the signal reaches it;
 * the parent's only one is the --json report's. kill is async-signal-safe. */
static void on_parent_signal(int sig)
{
	size_t i;

	for (i = 0; i < BNF_MAX_THREADS; i++)
		if (workers[i] > 0)
			kill(workers[i], sig);
	bnf_temp_remove_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

void cli_signals_install_parent(void)
{
	handle(SIGPIPE, SIG_IGN);
	handle(SIGINT, on_parent_signal);
	handle(SIGTERM, on_parent_signal);
	handle(SIGHUP, on_parent_signal);
}
