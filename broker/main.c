/* ioreq-brokerd: the default client of the HSM for many VMs at once. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#include <systemd/sd-daemon.h>

#include "broker.h"
#include "commands.h"
#include "control.h"
#include "config.h"
#include "journal.h"
#include "log.h"
#include "sim.h"

/* --check reports this many errors, then how many more there are. */
#define CHECK_MAX_ERRORS 20

#ifdef __SANITIZE_ADDRESS__
const char *__lsan_default_suppressions(void);

/* nng 1.5.2 drops a message handed to a pipe that is closing: its ipc
 * transport's ipc_pipe_send returns when nni_aio_begin fails without
 * finishing the aio (src/sp/transport/ipc/ipc.c:515), so pair1 never frees
 * it. A request sent to a device at the moment it dies is such a message.
 * rpc_send's own path frees what nng refuses (wire_send). */
const char *__lsan_default_suppressions(void)
{
	return "leak:rpc_send\n";
}
#endif

#ifdef __SANITIZE_THREAD__
const char *__tsan_default_options(void);

/* ThreadSanitizer sleeps a second at exit to catch late races; the tests
 * that time a stop would wait for it. The device library does the same. */
const char *__tsan_default_options(void)
{
	return "atexit_sleep_ms=0";
}
#endif

static void usage(FILE *f)
{
	fprintf(f, "Usage: ioreq-brokerd --config FILE [--exit-with-vms] [--verbose | --quiet]\n"
		   "       ioreq-brokerd --check FILE\n"
		   "       ioreq-brokerd --print-config-reference\n"
		   "\n"
		   "  -c, --config FILE    run the VMs and devices that FILE declares\n"
		   "  -n, --check FILE     validate FILE (and its sim scripts), start nothing\n"
		   "      --print-config-reference[=markdown|scdoc]\n"
		   "                       print every configuration key (README.md's tables, or\n"
		   "                       scdoc for ioreq-broker.yaml(5))\n"
		   "  -x, --exit-with-vms  exit when every VM has stopped: 0 if all stopped with\n"
		   "                       status 0, 1 otherwise\n"
		   "  -v, --verbose        log debug messages\n"
		   "  -q, --quiet          log only warnings and errors\n"
		   "  -h, --help           show this help\n"
		   "      --version        show the version\n");
}

/* Programs named without a '/' in the config are looked up next to us first. */
static void own_bindir(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);

	if (n <= 0) {
		snprintf(buf, len, ".");
		return;
	}
	buf[n] = '\0';
	*strrchr(buf, '/') = '\0';
}

/* The sim scripts are part of the configuration: --check reads them too. */
static int check_scripts(const struct cfg *c)
{
	char err[512];
	int bad = 0;

	for (size_t i = 0; i < c->n_vms; i++) {
		const struct cfg_vm *vm = &c->vms[i];

		if (vm->backend != CFG_BACKEND_SIM)
			continue;
		for (unsigned v = 0; v < vm->vcpus; v++) {
			struct sim_script *s = NULL;

			if (!vm->scripts[v])
				continue;
			if (sim_script_load(vm->scripts[v], &s, err, sizeof(err)) < 0) {
				fprintf(stderr, "%s\n", err);
				bad = 1;
			}
			sim_script_free(s);
		}
	}
	return bad;
}

static void print_error(void *opaque, const char *msg)
{
	fprintf(stderr, "%s\n", msg);
}

/* --check: every error of the file (the first CHECK_MAX_ERRORS), then those
 * of its scripts. */
static int check_config(const char *path, const char *bindir)
{
	struct cfg *c = NULL;
	size_t errors;
	int bad;

	if (cfg_check(path, bindir, CHECK_MAX_ERRORS, print_error, NULL, &c, &errors) < 0) {
		if (errors > CHECK_MAX_ERRORS)
			fprintf(stderr, "%s: %zu more errors\n", path, errors - CHECK_MAX_ERRORS);
		return 2;
	}
	bad = check_scripts(c);
	if (!bad)
		printf("%s: ok\n", path);
	cfg_free(c);
	return bad ? 2 : 0;
}

/* The control socket: the configured path, or RUNTIME_DIR/control. */
static struct control *open_control(struct broker *b)
{
	const struct cfg *c = broker_cfg(b);
	struct control *ctl = NULL;
	char path[PATH_MAX + 16];

	if (c->control_socket)
		snprintf(path, sizeof(path), "%s", c->control_socket);
	else
		snprintf(path, sizeof(path), "%s/control", broker_runtime_dir(b));
	if (control_open(path, c->control_group, commands_handle, b, &ctl) < 0)
		return NULL;
	return ctl;
}

static bool uses_sim(const struct cfg *c)
{
	for (size_t i = 0; i < c->n_vms; i++)
		if (c->vms[i].backend == CFG_BACKEND_SIM)
			return true;
	return false;
}

/* With --exit-with-vms the last line says how it went, as the demo guest's
 * "demo: ok" does: a sim VM's status is 0 only when every access of its
 * scripts returned what they expected. */
static void say_verdict(int status, bool sim)
{
	if (status)
		log_err("failed: not every VM stopped with status 0");
	else
		log_info("ok: every VM stopped with status 0%s",
			 sim ? " (sim: every access returned what its script expected)" : "");
}

/* The main thread takes the signals and tells systemd how things are; it
 * wakes for a signal, a VM's change of state, or its one-second tick. */
static int run(struct cfg *c, const char *bindir, bool exit_with_vms)
{
	struct itimerspec tick = { .it_interval = { .tv_sec = 1 }, .it_value = { .tv_sec = 1 } };
	char status[128] = "", line[128];
	struct control *ctl = NULL;
	struct broker *b = NULL;
	int sfd, tfd, r, result = 1;
	bool sim = false;
	uint64_t watchdog_us;
	int64_t last_ping = 0;
	sigset_t set;

	/* Signals are taken here, synchronously; no thread of ours or nng's gets them. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	if (sfd < 0 || tfd < 0 || timerfd_settime(tfd, 0, &tick, NULL) < 0) {
		log_msg_errno(LOG_ERR, errno, "cannot set up the main loop: %s", strerror(errno));
		cfg_free(c);
		goto out;
	}
	if (broker_create(c, bindir, &b) < 0)
		goto out;
	r = broker_start(b);
	if (r == 0) {
		ctl = open_control(b);
		if (!ctl)
			r = -EIO;
	}
	if (r == 0)
		r = broker_autostart(b);
	if (r < 0)
		goto out;
	sd_notify(0, "READY=1");
	if (sd_watchdog_enabled(0, &watchdog_us) <= 0)
		watchdog_us = 0;
	for (;;) {
		struct pollfd p[3] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = broker_changed_fd(b), .events = POLLIN },
			{ .fd = tfd, .events = POLLIN },
		};
		struct signalfd_siginfo si;
		int64_t now;
		uint64_t n;

		if (exit_with_vms && !broker_vms_running(b))
			break;
		if (poll(p, 3, -1) < 0)
			continue;
		if (p[0].revents && read(sfd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo == SIGHUP) {
				broker_reload(b, NULL, 0);
			} else {
				log_info("%s: stopping", strsignal((int)si.ssi_signo));
				break;
			}
		}
		if (p[1].revents)
			eventfd_read(broker_changed_fd(b), &n);
		if (p[2].revents && read(tfd, &n, sizeof(n)) < 0)
			continue;
		now = broker_uptime_ms(b);
		if (watchdog_us && now - last_ping >= (int64_t)(watchdog_us / 2000)) {
			sd_notify(0, "WATCHDOG=1");
			last_ping = now;
		}
		broker_summary(b, line, sizeof(line));
		if (strcmp(line, status)) {
			sd_notifyf(0, "STATUS=%s", line);
			snprintf(status, sizeof(status), "%s", line);
		}
	}
	sd_notify(0, "STOPPING=1");
	result = 0;
	sim = uses_sim(broker_cfg(b));
out:
	ctl = control_close(ctl);
	r = broker_destroy(b);
	if (sfd >= 0)
		close(sfd);
	if (tfd >= 0)
		close(tfd);
	if (result == 0 && exit_with_vms)
		say_verdict(r, sim);
	return result == 0 && exit_with_vms ? r : result;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", required_argument, NULL, 'n' },
		{ "exit-with-vms", no_argument, NULL, 'x' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "print-config-reference", optional_argument, NULL, 'R' },
		{ "version", no_argument, NULL, 'V' },
		{},
	};
	const char *path = NULL;
	bool check = false, exit_with_vms = false;
	char bindir[PATH_MAX], err[1024];
	struct cfg *c = NULL;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "c:n:xvqh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'n':
			path = optarg;
			check = true;
			break;
		case 'x':
			exit_with_vms = true;
			break;
		case 'v':
			log_set_level(LOG_DEBUG);
			break;
		case 'q':
			log_set_level(LOG_WARNING);
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'R':
			if (optarg && strcmp(optarg, "markdown") && strcmp(optarg, "scdoc")) {
				fprintf(stderr, "ioreq-brokerd: --print-config-reference=markdown|scdoc\n");
				return 2;
			}
			return cfg_print_reference(stdout, optarg && !strcmp(optarg, "scdoc") ? CFG_REF_SCDOC
											: CFG_REF_MARKDOWN) < 0;
		case 'V':
			printf("ioreq-brokerd %s\n", IOREQ_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!path || optind != argc) {
		usage(stderr);
		return 2;
	}
	own_bindir(bindir, sizeof(bindir));
	if (check)
		return check_config(path, bindir);
	/* Under systemd: to the journal, with the VM and device as fields. */
	if (log_stderr_is_journal())
		log_set_sink(journal_sink);
	r = cfg_load(path, bindir, &c, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	log_debug("config %s loaded: %zu VMs, devices next to %s", path, c->n_vms, bindir);
	return run(c, bindir, exit_with_vms);
}
