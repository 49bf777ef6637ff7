/*
 * Many models in one run (bnfold -O DIR, --suffix, -r, or several model
 * arguments): the plan (check/batch.h), one worker process per model
 * (pool.c), and what comes back rendered in input order: each model's own
 * lines under its name, one summary line per model, a total, the schema 2
 * report, and the worst exit code. Nothing here depends on how many
 * models ran at once.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check/batch.h"
#include "cli/human.h"
#include "cli/modes.h"
#include "cli/pool.h"
#include "cli/signals.h"
#include "util/format.h"
#include "util/path.h"

/* What a worker sends back: the outcome, then json_len bytes of its
 * schema 2 entry. */
struct wire {
	struct cli_outcome outcome;
	int made_folder; /* the worker made its output's folder */
	size_t json_len;
};

struct model {
	struct cli_outcome outcome;
	char *json;  /* its schema 2 entry, with --json */
	char *lines; /* what its worker printed */
	int done, made_folder;
};

struct many {
	const struct cli *cli;
	struct bnf_batch batch;
	struct model *models;
	int at_once;
	size_t printed, finished;
	const char *last_started;
	struct cli_totals totals;
	double start;
	int progress_shown, tty;
};

/* The deploy gate alone: --check with nothing to write. */
static int lint_only(const struct cli *cli)
{
	return cli->check && !cli->dry_run && !cli->output_dir && !cli->suffix;
}

/* ---- the worker ---- */

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* In the worker process: run model i as the single-model form would, with
 * its share of the cores, and send what it came to. */
static int work(void *arg, size_t i, size_t unfinished, int fd)
{
	struct many *m = arg;
	const struct bnf_batch_item *it = &m->batch.items[i];
	struct cli one = *m->cli;
	struct wire w;
	struct bnf_error err;
	char *json = NULL;
	int rc;

	cli_signals_install(it->input);
	one.many = 0;
	one.input = it->input;
	one.output = it->output;
	one.quiet = !m->cli->verbose; /* a model's own lines: the failures, or all with -v */
	one.verify.threads = bnf_batch_threads(m->cli->verify.threads, m->at_once, unfinished);
	memset(&w, 0, sizeof(w));
	memset(&err, 0, sizeof(err));
	if (it->output &&
	    bnf_batch_make_output_folder(it->output, &w.made_folder, &err) != BNF_OK) {
		w.outcome.status = CLI_MODEL_STATUS_ERROR;
		w.outcome.exit_code = rc = EXIT_CODE_UNUSABLE;
		snprintf(w.outcome.error, sizeof(w.outcome.error), "%s", err.msg);
	} else {
		rc = cli_mode_one(&one, &w.outcome, &json);
	}
	w.json_len = json ? strlen(json) : 0;
	if (write_all(fd, &w, sizeof(w)) != 0 || (json && write_all(fd, json, w.json_len) != 0))
		rc = EXIT_CODE_UNUSABLE; /* the parent says what is missing */
	free(json);
	return rc;
}

/* ---- what comes back ---- */

/* The last line of text that is not empty, without "bnfold: ", into buf;
 * the text is cut before it. */
static void take_last_line(char *text, char *buf, size_t len)
{
	size_t n = strlen(text);
	char *line;

	while (n > 0 && text[n - 1] == '\n')
		text[--n] = '\0';
	line = strrchr(text, '\n');
	line = line ? line + 1 : text;
	snprintf(buf, len, "%s", strncmp(line, "bnfold: ", 8) == 0 ? line + 8 : line);
	*line = '\0';
}

/* A worker that ended without sending its outcome (or not as it said it
 * would): why, from how it ended and the last thing it printed. */
static void lost_outcome(struct model *md, const struct cli_pool_result *r)
{
	struct cli_outcome *o = &md->outcome;

	memset(o, 0, sizeof(*o));
	o->status = CLI_MODEL_STATUS_ERROR;
	o->exit_code = EXIT_CODE_UNUSABLE;
	o->ms = r->ms;
	if (r->wait_status == -1)
		snprintf(o->error, sizeof(o->error), "cannot start a worker process: %s",
		         strerror(r->start_errno));
	else if (WIFSIGNALED(r->wait_status))
		snprintf(o->error, sizeof(o->error), "the worker process ended by signal %d (%s)",
		         WTERMSIG(r->wait_status), strsignal(WTERMSIG(r->wait_status)));
	else if (md->lines && md->lines[0])
		take_last_line(md->lines, o->error, sizeof(o->error));
	else
		snprintf(o->error, sizeof(o->error), "the worker process ended with status %d",
		         WIFEXITED(r->wait_status) ? WEXITSTATUS(r->wait_status) : -1);
}

/* An entry for a model whose worker sent none. */
static char *entry_of_lost(const struct many *m, size_t i, const struct cli_outcome *o)
{
	struct cli_facts f;
	size_t k;

	memset(&f, 0, sizeof(f));
	for (k = 0; k < BNF_RUN_PHASE_COUNT; k++)
		f.phase_ms[k] = -1;
	f.input = m->batch.items[i].input;
	f.levels = m->cli->levels;
	f.exit_code = o->exit_code;
	f.outcome = o;
	return cli_report_entry_json(&f);
}

static void count(struct many *m, const struct cli_outcome *o)
{
	struct cli_totals *t = &m->totals;

	t->models++;
	t->by_status[o->status]++;
	t->with_findings += o->findings_errors > 0;
	t->batchnorms += o->batchnorms;
	t->folded += o->folded;
	if (o->exit_code > t->exit_code)
		t->exit_code = o->exit_code;
}

/* ---- the lines ---- */

static void progress_clear(struct many *m)
{
	if (m->progress_shown)
		fputs("\r\033[K", stderr);
	m->progress_shown = 0;
}

/* On a terminal, once the run has taken a second: how far it is. */
static void progress_draw(struct many *m)
{
	if (!m->tty || m->cli->quiet || m->finished == m->batch.n ||
	    cli_now_ms() - m->start < 1000.0)
		return;
	fprintf(stderr, "\r\033[Kbnfold: %zu of %zu models done; running %s", m->finished,
	        m->batch.n, m->last_started ? m->last_started : "");
	fflush(stderr);
	m->progress_shown = 1;
}

/* A worker's own lines, each under the model's name. */
static void print_lines(const char *label, const char *text)
{
	while (text && *text) {
		const char *nl = strchr(text, '\n');
		size_t n = nl ? (size_t)(nl - text) : strlen(text);
		if (strncmp(text, "bnfold: ", 8) == 0) {
			text += 8;
			n -= 8;
		}
		fprintf(stderr, "bnfold: %s: %.*s\n", label, (int)n, text);
		text += n + (nl ? 1 : 0);
	}
}

static const char *plural(size_t n)
{
	return n == 1 ? "" : "s";
}

/* "12 ms" or "3.45 s". */
static const char *duration(double ms, char *buf, size_t len)
{
	if (ms < 1000)
		snprintf(buf, len, "%.0f ms", ms);
	else
		snprintf(buf, len, "%.2f s", ms / 1000);
	return buf;
}

/* ", N findings (E errors, W warnings)" or ", no findings". */
static void findings_text(const struct cli_outcome *o, char *buf, size_t len)
{
	size_t n = o->findings_errors + o->findings_warnings;

	if (n == 0)
		snprintf(buf, len, ", no findings");
	else
		snprintf(buf, len, ", %zu finding%s (%zu error%s, %zu warning%s)", n, plural(n),
		         o->findings_errors, plural(o->findings_errors), o->findings_warnings,
		         plural(o->findings_warnings));
}

/* " (kept: 2 other-consumer, 1 training-mode)", or "" when none was kept. */
static void kept_text(const struct cli_outcome *o, char *buf, size_t len)
{
	size_t used = 0, k;

	buf[0] = '\0';
	for (k = 0; k < BNF_KEEP_REASON_COUNT && used < len; k++)
		if (o->kept[k])
			used += (size_t)snprintf(buf + used, len - used, "%s%zu %s",
			                         used ? ", " : " (kept: ", o->kept[k],
			                         bnf_keep_reason_code((enum bnf_keep_reason)k));
	if (used && used < len)
		snprintf(buf + used, len - used, ")");
}

/* One model's summary line: the folds with the reasons of what stayed,
 * then the fate. */
static void print_summary(const struct many *m, const char *label, const struct cli_outcome *o)
{
	static const char *const fate[CLI_MODEL_STATUS_COUNT] = {
	    [CLI_MODEL_STATUS_VERIFIED] = "verified",
	    [CLI_MODEL_STATUS_UNCHANGED] = "unchanged",
	    [CLI_MODEL_STATUS_UNVERIFIED] = "not verified",
	    [CLI_MODEL_STATUS_CHECK_FAILED] = "check failed, nothing written",
	    [CLI_MODEL_STATUS_FORCED] = "check failed, written anyway (--force)",
	};
	const char *msg = o->error;
	size_t n = strlen(label);
	char findings[128] = "", kept[512], took[32];

	if (o->status == CLI_MODEL_STATUS_ERROR) {
		/* Most reasons start with the file's name: it is said once. */
		if (strncmp(msg, label, n) == 0 && strncmp(msg + n, ": ", 2) == 0)
			msg += n + 2;
		fprintf(stderr, "bnfold: %s: error: %s (%s)\n", label, msg,
		        duration(o->ms, took, sizeof(took)));
		return;
	}
	if (o->lint_ran)
		findings_text(o, findings, sizeof(findings));
	kept_text(o, kept, sizeof(kept));
	if (o->status == CLI_MODEL_STATUS_LINTED)
		fprintf(stderr, "bnfold: %s: foldable %zu of %zu%s%s (%s)\n", label, o->folded,
		        o->batchnorms, kept, findings, duration(o->ms, took, sizeof(took)));
	else
		fprintf(stderr, "bnfold: %s: folded %zu of %zu%s, %s%s%s (%s)\n", label, o->folded,
		        o->batchnorms, kept, fate[o->status],
		        o->status == CLI_MODEL_STATUS_UNVERIFIED && m->cli->no_verify
		            ? " (--no-verify)"
		            : "",
		        findings, duration(o->ms, took, sizeof(took)));
}

/* The finished models at the head of the input order, in that order. */
static void print_ready(struct many *m)
{
	while (m->printed < m->batch.n && m->models[m->printed].done) {
		struct model *md = &m->models[m->printed];
		const char *label = bnf_path_label(m->batch.items[m->printed].input, 0);

		progress_clear(m);
		print_lines(label, md->lines);
		if (!m->cli->quiet || md->outcome.exit_code != EXIT_CODE_OK)
			print_summary(m, label, &md->outcome);
		free(md->lines);
		md->lines = NULL;
		m->printed++;
	}
}

/* Append ", N words" to parts when n is not 0 (or always). */
static size_t add_count(char *parts, size_t used, size_t len, size_t n, const char *one,
                        const char *many, int always)
{
	if ((n == 0 && !always) || used >= len)
		return used;
	return used + (size_t)snprintf(parts + used, len - used, "%s%zu %s", used ? ", " : "", n,
	                               n == 1 ? one : many);
}

/* "14 verified, 1 check failed, 2 errors; folded 40 of 45 ..." */
static void print_total(const struct many *m)
{
	static const char *const words[CLI_MODEL_STATUS_COUNT][2] = {
	    [CLI_MODEL_STATUS_VERIFIED] = {"verified", "verified"},
	    [CLI_MODEL_STATUS_UNCHANGED] = {"unchanged", "unchanged"},
	    [CLI_MODEL_STATUS_UNVERIFIED] = {"not verified", "not verified"},
	    [CLI_MODEL_STATUS_CHECK_FAILED] = {"check failed", "checks failed"},
	    [CLI_MODEL_STATUS_FORCED] = {"written despite a failed check",
	                                 "written despite a failed check"},
	    [CLI_MODEL_STATUS_LINTED] = {"checked", "checked"},
	    [CLI_MODEL_STATUS_ERROR] = {"error", "errors"},
	};
	const struct cli_totals *t = &m->totals;
	int gate = lint_only(m->cli);
	char parts[512] = "", took[32];
	size_t used = 0, k;

	if (gate) {
		used = add_count(parts, used, sizeof(parts),
		                 t->by_status[CLI_MODEL_STATUS_LINTED] - t->with_findings, "passed",
		                 "passed", 1);
		used = add_count(parts, used, sizeof(parts), t->with_findings, "with findings",
		                 "with findings", 1);
	}
	for (k = 0; k < CLI_MODEL_STATUS_COUNT; k++)
		if (!gate || k == CLI_MODEL_STATUS_ERROR)
			used = add_count(parts, used, sizeof(parts), t->by_status[k], words[k][0],
			                 words[k][1], 0);
	if (m->cli->check && !gate)
		used = add_count(parts, used, sizeof(parts), t->with_findings, "with findings",
		                 "with findings", 1);
	fprintf(stderr, "bnfold: %zu model%s: %s; %s %zu of %zu BatchNormalization nodes; %s\n",
	        t->models, plural(t->models), parts, gate ? "foldable" : "folded", t->folded,
	        t->batchnorms, duration(t->ms, took, sizeof(took)));
}

/* -v: how the run shares the machine. */
static void print_share(const struct many *m)
{
	const struct cli *cli = m->cli;
	char memory[32], budget[32];

	bnf_format_size((double)cli->memory, memory, sizeof(memory));
	bnf_format_size((double)cli->check_memory, budget, sizeof(budget));
	cli_say("%zu model%s, up to %d at once (-j %d; %s of memory, --check-memory %s each)",
	        m->batch.n, plural(m->batch.n), m->at_once, cli->verify.threads, memory, budget);
}

/* ---- the pool's callbacks ---- */

static void done(void *arg, size_t i, const struct cli_pool_result *r)
{
	struct many *m = arg;
	struct model *md = &m->models[i];
	struct wire w;

	md->lines = r->err_len ? strdup(r->err) : NULL;
	memset(&w, 0, sizeof(w));
	if (r->out_len >= sizeof(w))
		memcpy(&w, r->out, sizeof(w));
	/* The outcome counts only when the worker then ended as it said it
	 * would: not when it died, or a sanitizer changed its exit code. */
	if (r->out_len >= sizeof(w) && WIFEXITED(r->wait_status) &&
	    WEXITSTATUS(r->wait_status) == w.outcome.exit_code) {
		md->outcome = w.outcome;
		md->outcome.error[sizeof(md->outcome.error) - 1] = '\0';
		if (w.json_len && w.json_len <= r->out_len - sizeof(w))
			md->json = strndup(r->out + sizeof(w), w.json_len);
	} else {
		lost_outcome(md, r);
	}
	md->made_folder = w.made_folder;
	if (m->cli->json && !md->json)
		md->json = entry_of_lost(m, i, &md->outcome);
	md->done = 1;
	m->finished++;
	count(m, &md->outcome);
	print_ready(m);
}

static void started(void *arg, size_t i)
{
	struct many *m = arg;

	m->last_started = bnf_path_label(m->batch.items[i].input, 0);
}

static void tick(void *arg)
{
	progress_draw(arg);
}

/* ---- the run ---- */

static int usage_error(const char *msg)
{
	cli_say("%s", msg);
	fputs("Try 'bnfold --help'.\n", stderr);
	return EXIT_CODE_UNUSABLE;
}

/* The plan; returns -1 to go on, or the exit code. */
static int plan(struct many *m)
{
	const struct cli *cli = m->cli;
	struct bnf_batch_options bo;
	struct bnf_error err;

	memset(&bo, 0, sizeof(bo));
	memset(&err, 0, sizeof(err));
	bo.args = cli->models;
	bo.n_args = cli->n_models;
	bo.recursive = cli->recursive;
	bo.out_dir = cli->output_dir;
	bo.suffix = cli->suffix;
	bo.write = !cli->dry_run && (cli->output_dir || cli->suffix);
	if (bnf_batch_plan(&bo, &m->batch, &err) != BNF_OK) {
		if (err.status == BNF_ERR_INPUT)
			return usage_error(err.msg);
		cli_say("%s", err.msg);
		return EXIT_CODE_UNUSABLE;
	}
	if (bo.write && cli->output_dir &&
	    bnf_batch_make_folder(cli->output_dir, NULL, &err) != BNF_OK) {
		cli_say("%s", err.msg);
		return EXIT_CODE_UNUSABLE;
	}
	return -1;
}

/* Folders made for outputs that were never written go again, once no
 * worker runs. */
static void remove_empty_folders(const struct many *m)
{
	size_t i;
	struct stat st;

	for (i = 0; i < m->batch.n; i++)
		if (m->models[i].made_folder && m->cli->output_dir &&
		    stat(m->batch.items[i].output, &st) != 0)
			bnf_batch_remove_empty_folders(m->batch.items[i].output,
			                               m->cli->output_dir);
}

/* The order to start models in: the largest first, so that a big one
 * does not start last and run alone (ties in input order). */
static size_t *start_order(const struct bnf_batch *b)
{
	size_t *order = malloc((b->n ? b->n : 1) * sizeof(*order)), i, j;

	if (!order)
		return NULL;
	for (i = 0; i < b->n; i++) {
		size_t k = i;
		for (j = i; j > 0 && b->items[order[j - 1]].size < b->items[k].size; j--)
			order[j] = order[j - 1];
		order[j] = k;
	}
	return order;
}

static int write_report(struct many *m)
{
	const struct cli *cli = m->cli;
	char **entries = calloc(m->batch.n + 1, sizeof(*entries));
	const char *mode = "fold";
	char *text = NULL;
	size_t i;
	int rc = 0;

	if (cli->check)
		mode = lint_only(cli) ? "check" : "fold+check";
	for (i = 0; entries && i < m->batch.n; i++)
		entries[i] = m->models[i].json ? m->models[i].json : "null";
	if (entries)
		text = cli_report_many_json(BNF_VERSION, mode, entries, m->batch.n, &m->totals);
	if (!text) {
		cli_say("out of memory");
		rc = -1;
	} else {
		rc = cli_write_report(m->cli->json, text);
	}
	free(text);
	free(entries);
	return rc;
}

int cli_mode_many(const struct cli *cli)
{
	struct many m;
	struct cli_pool pool;
	size_t *order = NULL, i;
	int rc;

	memset(&m, 0, sizeof(m));
	m.cli = cli;
	m.start = cli_now_ms();
	m.tty = isatty(STDERR_FILENO);
	if ((rc = plan(&m)) >= 0)
		goto out;
	rc = EXIT_CODE_UNUSABLE;
	m.models = calloc(m.batch.n, sizeof(*m.models));
	order = start_order(&m.batch);
	if (!m.models || !order) {
		cli_say("out of memory");
		goto out;
	}
	m.at_once =
	    bnf_batch_at_once(cli->verify.threads, m.batch.n, cli->check_memory, cli->memory);
	if (cli->verbose)
		print_share(&m);
	memset(&pool, 0, sizeof(pool));
	pool.n = m.batch.n;
	pool.order = order;
	pool.at_once = m.at_once;
	pool.work = work;
	pool.started = started;
	pool.done = done;
	pool.tick = m.tty && !cli->quiet ? tick : NULL;
	pool.arg = &m;
	if (cli_pool_run(&pool) != 0) {
		progress_clear(&m);
		cli_say("cannot run the worker processes: %s", strerror(errno));
		goto out;
	}
	progress_clear(&m);
	remove_empty_folders(&m);
	m.totals.ms = cli_now_ms() - m.start;
	if (!cli->quiet)
		print_total(&m);
	rc = m.totals.exit_code;
	if (cli->json && write_report(&m) != 0)
		rc = EXIT_CODE_UNUSABLE;
out:
	for (i = 0; m.models && i < m.batch.n; i++) {
		free(m.models[i].json);
		free(m.models[i].lines);
	}
	free(m.models);
	free(order);
	bnf_batch_free(&m.batch);
	return rc;
}
