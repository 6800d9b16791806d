/* ioreq-brokerd: the default client of the HSM for many VMs at once. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "broker.h"
#include "config.h"
#include "log.h"
#include "sim.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: ioreq-brokerd --config FILE [--exit-with-vms] [--verbose | --quiet]\n"
		   "       ioreq-brokerd --check FILE\n"
		   "       ioreq-brokerd --print-config-reference\n"
		   "\n"
		   "  -c, --config FILE    run the VMs and devices that FILE declares\n"
		   "  -n, --check FILE     validate FILE (and its sim scripts), start nothing\n"
		   "      --print-config-reference  print every configuration key (Markdown)\n"
		   "  -x, --exit-with-vms  exit when every VM has stopped: 0 if all stopped with\n"
		   "                       status 0, 1 otherwise\n"
		   "  -v, --verbose        log debug messages\n"
		   "  -q, --quiet          log only warnings and errors\n"
		   "  -h, --help           show this help\n");
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

static int run(struct cfg *c, const char *bindir, bool exit_with_vms)
{
	int64_t last_ping = 0, last_status = 0;
	struct broker *b = NULL;
	uint64_t watchdog_us;
	sigset_t set;
	int r, status;

	/* Signals are taken here, synchronously; no thread of ours or nng's gets them. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	r = broker_create(c, bindir, &b);
	if (r < 0)
		return 1;
	r = broker_start(b);
	if (r < 0) {
		broker_destroy(b);
		return 1;
	}
	sd_notify(0, "READY=1");
	if (sd_watchdog_enabled(0, &watchdog_us) <= 0)
		watchdog_us = 0;
	for (;;) {
		struct timespec tick = { .tv_nsec = 20 * 1000000 };
		int sig = sigtimedwait(&set, NULL, &tick);
		int64_t now = broker_now_ms();

		if (sig == SIGINT || sig == SIGTERM) {
			log_info("%s: stopping", strsignal(sig));
			break;
		}
		if (sig == SIGHUP)
			broker_reload(b, NULL, 0);
		if (exit_with_vms && !broker_vms_running(b))
			break;
		if (watchdog_us && now - last_ping >= (int64_t)(watchdog_us / 2000)) {
			sd_notify(0, "WATCHDOG=1");
			last_ping = now;
		}
		if (now - last_status >= 1000) {
			char line[128];

			broker_summary(b, line, sizeof(line));
			sd_notifyf(0, "STATUS=%s", line);
			last_status = now;
		}
	}
	sd_notify(0, "STOPPING=1");
	status = broker_destroy(b);
	return exit_with_vms ? status : 0;
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
		{ "print-config-reference", no_argument, NULL, 'R' },
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
			return cfg_print_reference(stdout) < 0;
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
	r = cfg_load(path, bindir, &c, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	if (check) {
		r = check_scripts(c);
		if (!r)
			printf("%s: ok\n", path);
		cfg_free(c);
		return r ? 2 : 0;
	}
	return run(c, bindir, exit_with_vms);
}
