/*
 * The bnfold command line: parses the options (args.c), picks the mode
 * (modes.c), and owns the process: signal handling, defaults that depend
 * on the machine, and the exit code (0 success, 1 a check failed, 2 usage
 * error or unusable input or output).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/human.h"
#include "cli/modes.h"
#include "io/external.h"
#include "util/mem.h"
#include "util/path.h"
#include "util/tempfiles.h"
#include "util/thread.h"

static int default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > BNF_MAX_THREADS ? BNF_MAX_THREADS : (int)n;
}

/* The whole-graph check's default budget: half the physical memory, at
 * most 4 GiB. */
static size_t default_check_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	unsigned long long half = 0, cap = 4ULL << 30;

	if (pages > 0 && page > 0)
		half = (unsigned long long)pages * (unsigned long long)page / 2;
	if (half == 0 || half > cap)
		half = cap;
	return half > SIZE_MAX ? SIZE_MAX : (size_t)half;
}

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

static void install_signals(const char *input)
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

int main(int argc, char **argv)
{
	struct cli cli;
	int rc;

	bnf_mem_init();
	memset(&cli, 0, sizeof(cli));
	cli.verify.inputs = &cli.inputs;
	cli.verify.samples = 1;
	cli.verify.seed = 1;
	cli.verify.threads = default_threads();
	cli.verify.atol = -1;
	cli.verify.rtol = -1;
	cli.plan.threshold = 1024; /* as the ONNX tools' size_threshold */
	cli.check_memory = default_check_memory();
	cli.ext = bnf_external_new();
	cli.verify.ext = cli.ext;
	if (!cli.ext) {
		cli_say("out of memory");
		return EXIT_CODE_UNUSABLE;
	}
	rc = cli_parse_args(argc, argv, &cli);
	install_signals(cli.input);
	if (rc < 0) {
		if (cli.mode == CLI_MODE_RUN)
			rc = cli_mode_run(&cli);
		else if (cli.mode == CLI_MODE_COMPARE)
			rc = cli_mode_compare(&cli);
		else if (cli.check && !cli.output && !cli.dry_run)
			rc = cli_mode_check(&cli);
		else
			rc = cli_mode_fold(&cli);
	}
	bnf_input_spec_free(&cli.inputs);
	bnf_external_free(cli.ext);
	return rc;
}
