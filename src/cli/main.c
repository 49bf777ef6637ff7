/*
 * The bnfold command line: parses the options (args.c), picks the mode
 * (modes.c, many.c), and owns the process: its signals (signals.c),
 * defaults that depend on the machine, and the exit code (0 success, 1 a
 * check failed, 2 usage error or unusable input or output).
 */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/human.h"
#include "cli/modes.h"
#include "cli/signals.h"
#include "io/external.h"
#include "util/mem.h"
#include "util/thread.h"

static int default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > BNF_MAX_THREADS ? BNF_MAX_THREADS : (int)n;
}

/* The machine's physical memory in bytes (0 when unknown). */
static uint64_t physical_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);

	return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

/* The whole-graph check's default budget: half the physical memory, at
 * most 4 GiB. */
static size_t default_check_memory(uint64_t memory)
{
	uint64_t half = memory / 2, cap = 4ULL << 30;

	if (half == 0 || half > cap)
		half = cap;
	return half > SIZE_MAX ? SIZE_MAX : (size_t)half;
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
	cli.memory = physical_memory();
	cli.check_memory = default_check_memory(cli.memory);
	cli.ext = bnf_external_new();
	cli.verify.ext = cli.ext;
	if (!cli.ext) {
		cli_say("out of memory");
		return EXIT_CODE_UNUSABLE;
	}
	rc = cli_parse_args(argc, argv, &cli);
	if (rc < 0 && cli.many) {
		cli_signals_install_parent();
		rc = cli_mode_many(&cli);
	} else if (rc < 0) {
		cli_signals_install(cli.input);
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
