/* What ioreqctl shows of a running broker beyond its tables: metrics in the
 * OpenMetrics text format, checked strictly against the format and against
 * the broker's own stats. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <pty.h>
#include <termios.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "harness.h"
#include "json.h"

static char out[1 << 18];
static char sock[512];

#define ctl(...) harness_ioreqctl(sock, out, sizeof(out), __VA_ARGS__)

/* A VM that runs until stopped, with two devices to count. */
static void start_broker(struct run *r)
{
	const char *args[] = { "--config", NULL, NULL };

	snprintf(sock, sizeof(sock), "%s/run/control", harness_tmpdir());
	harness_write("loop.txt", "repeat 1000000\n  pio write 0x60 1 1\n  mmio read 0x1000 4 0\n  sleep 2\nend\n");
	args[1] = harness_write("c.yaml",
				"broker: { runtime_dir: %s/run }\n"
				"vms:\n"
				"  - name: loop\n"
				"    backend: sim\n"
				"    vcpus: 1\n"
				"    scripts: [loop.txt]\n"
				"    devices:\n"
				"      - { name: sink, program: ioreq-dev-null, pio: [\"0x60..0x63\"] }\n"
				"      - { name: ram, program: ioreq-dev-ram, mmio: [\"0x1000+0x100\"] }\n",
				harness_tmpdir());
	harness_start(r, args);
	assert_non_null(harness_wait_log(r, "vm loop: started", 30));
}

/* ---- a strict OpenMetrics checker (the text format, with what Prometheus
 * itself checks of histograms) ---- */

#define MAX_FAMILIES 64
#define MAX_SERIES 256

struct om {
	char families[MAX_FAMILIES][64];
	char types[MAX_FAMILIES][16];
	size_t n_families;
	/* per histogram series (its labels without le): the last bucket */
	struct series {
		char key[256];
		double last_le, last_count, inf;
		bool has_inf, has_count, has_sum;
	} series[MAX_SERIES];
	size_t n_series;
	unsigned samples;
};

static bool metric_name(const char **p, char *buf, size_t len)
{
	size_t n = 0;

	if (!isalpha((unsigned char)**p) && **p != '_' && **p != ':')
		return false;
	while (isalnum((unsigned char)**p) || **p == '_' || **p == ':') {
		if (n + 1 >= len)
			return false;
		buf[n++] = *(*p)++;
	}
	buf[n] = '\0';
	return true;
}

/* {name="value",...}: the labels except le into @key, le into @le. */
static const char *labels(const char *p, char *key, size_t klen, char *le, size_t llen)
{
	size_t k = 0;

	*key = *le = '\0';
	if (*p != '{')
		return p;
	p++;
	while (*p != '}') {
		char name[64], value[128];
		size_t v = 0;

		if (!metric_name(&p, name, sizeof(name)) || strchr(name, ':') || *p++ != '=' || *p++ != '"')
			return NULL;
		while (*p != '"') {
			if (!*p || *p == '\n' || v + 2 >= sizeof(value))
				return NULL;
			if (*p == '\\') {
				p++;
				if (*p != '\\' && *p != '"' && *p != 'n')
					return NULL;
			}
			value[v++] = *p++;
		}
		value[v] = '\0';
		p++;
		if (!strcmp(name, "le"))
			snprintf(le, llen, "%.63s", value);
		else
			k += (size_t)snprintf(key + k, klen > k ? klen - k : 0, "%s=%s,", name, value);
		if (*p == ',')
			p++;
		else if (*p != '}')
			return NULL;
	}
	return p + 1;
}

static bool number(const char *s, double *ret)
{
	char *end;

	if (!strcmp(s, "+Inf")) {
		*ret = HUGE_VAL;
		return true;
	}
	errno = 0;
	*ret = strtod(s, &end);
	return !errno && end != s && !*end && !isspace((unsigned char)*s);
}

static struct series *series_of(struct om *m, const char *family, const char *key)
{
	char k[256];

	snprintf(k, sizeof(k), "%s|%s", family, key);
	for (size_t i = 0; i < m->n_series; i++)
		if (!strcmp(m->series[i].key, k))
			return &m->series[i];
	if (m->n_series == MAX_SERIES)
		return NULL;
	snprintf(m->series[m->n_series].key, sizeof(m->series[0].key), "%s", k);
	m->series[m->n_series].last_le = -HUGE_VAL;
	return &m->series[m->n_series++];
}

static char why[512];

#define BAD(...) (snprintf(why, sizeof(why), __VA_ARGS__), why)

/* NULL, or what breaks the format first. */
static const char *check_openmetrics(const char *text, struct om *m)
{
	const char *line = text, *family = NULL, *type = NULL;
	unsigned n = 0;
	bool eof = false;

	memset(m, 0, sizeof(*m));
	while (*line) {
		const char *nl = strchr(line, '\n'), *p;
		char buf[1024], name[128], key[256], le[64], *sp;
		double v;

		n++;
		if (!nl)
			return BAD("line %u does not end with a newline", n);
		if (eof)
			return BAD("line %u: text after # EOF", n);
		snprintf(buf, sizeof(buf), "%.*s", (int)(nl - line), line);
		line = nl + 1;
		if (!strcmp(buf, "# EOF")) {
			eof = true;
			continue;
		}
		if (!strncmp(buf, "# ", 2)) {
			char kw[8], fam[128], rest[512] = "";

			if (sscanf(buf, "# %7s %127s %511[^\n]", kw, fam, rest) < 2)
				return BAD("line %u: bad metadata: %.300s", n, buf);
			p = fam;
			if (!metric_name(&p, name, sizeof(name)) || *p)
				return BAD("line %u: bad family name: %.300s", n, buf);
			if (!strcmp(kw, "TYPE")) {
				static const char *const types[] = { "counter", "gauge", "histogram", "gaugehistogram",
								     "summary", "info", "stateset", "unknown" };
				bool known = false;

				for (size_t i = 0; i < m->n_families; i++)
					if (!strcmp(m->families[i], fam))
						return BAD("line %u: family %s twice (its samples must be together)", n,
							 fam);
				for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
					known |= !strcmp(rest, types[i]);
				if (!known)
					return BAD("line %u: unknown type %s", n, rest);
				if (m->n_families == MAX_FAMILIES)
					return BAD("too many families");
				snprintf(m->families[m->n_families], sizeof(m->families[0]), "%s", fam);
				snprintf(m->types[m->n_families], sizeof(m->types[0]), "%s", rest);
				family = m->families[m->n_families];
				type = m->types[m->n_families++];
				if (!strcmp(type, "counter") && strlen(fam) > 6 && !strcmp(fam + strlen(fam) - 6, "_total"))
					return BAD("line %u: a counter family is named without _total", n);
			} else if (!strcmp(kw, "HELP") || !strcmp(kw, "UNIT")) {
				if (!family || strcmp(fam, family))
					return BAD("line %u: %s for %s outside its family", n, kw, fam);
				if (!strcmp(kw, "UNIT") && (strlen(fam) <= strlen(rest) ||
							    strcmp(fam + strlen(fam) - strlen(rest), rest)))
					return BAD("line %u: the family name must end with its unit", n);
			} else {
				return BAD("line %u: unknown metadata %s", n, kw);
			}
			continue;
		}
		/* a sample: name{labels} value */
		p = buf;
		if (!metric_name(&p, name, sizeof(name)))
			return BAD("line %u: bad metric name: %.300s", n, buf);
		p = labels(p, key, sizeof(key), le, sizeof(le));
		if (!p || *p != ' ')
			return BAD("line %u: bad labels: %.300s", n, buf);
		sp = strchr(p + 1, ' ');
		if (sp)
			return BAD("line %u: timestamps or exemplars are not expected: %.300s", n, buf);
		if (!number(p + 1, &v))
			return BAD("line %u: bad value: %.300s", n, buf);
		if (!family)
			return BAD("line %u: a sample before any # TYPE", n);
		m->samples++;
		if (!strcmp(type, "counter")) {
			char want[160];

			snprintf(want, sizeof(want), "%s_total", family);
			if (strcmp(name, want))
				return BAD("line %u: %s is not %s", n, name, want);
			if (v < 0)
				return BAD("line %u: a negative counter", n);
		} else if (!strcmp(type, "gauge")) {
			if (strcmp(name, family))
				return BAD("line %u: %s outside its family %s", n, name, family);
		} else if (!strcmp(type, "histogram")) {
			size_t fl = strlen(family);
			struct series *s = series_of(m, family, key);

			if (!s)
				return BAD("too many series");
			double lev;

			if (strncmp(name, family, fl))
				return BAD("line %u: %s outside its family %s", n, name, family);
			if (!strcmp(name + fl, "_bucket")) {
				if (!*le || !number(le, &lev))
					return BAD("line %u: a bucket without a number in le", n);
				if (s->has_inf || s->has_count || lev <= s->last_le || v < s->last_count)
					return BAD("line %u: buckets out of order or not cumulative", n);
				s->last_le = lev;
				s->last_count = v;
				if (lev == HUGE_VAL) {
					s->has_inf = true;
					s->inf = v;
				}
			} else if (!strcmp(name + fl, "_count")) {
				if (!s->has_inf || v != s->inf)
					return BAD("line %u: _count is not the +Inf bucket", n);
				s->has_count = true;
			} else if (!strcmp(name + fl, "_sum")) {
				if (v < 0)
					return BAD("line %u: a negative _sum", n);
				s->has_sum = true;
			} else {
				return BAD("line %u: %s outside its family %s", n, name, family);
			}
		}
	}
	if (!eof)
		return BAD("no # EOF at the end");
	for (size_t i = 0; i < m->n_series; i++)
		if (!m->series[i].has_inf || !m->series[i].has_count || !m->series[i].has_sum)
			return BAD("histogram %s lacks +Inf, _count or _sum", m->series[i].key);
	return NULL;
}

/* The value of the sample @name{@labels} in @text, or -1. */
static double sample(const char *text, const char *name, const char *labels_text)
{
	char want[256];
	const char *p;

	snprintf(want, sizeof(want), "\n%s%s ", name, labels_text);
	p = strstr(text, want);
	return p ? strtod(p + strlen(want), NULL) : -1;
}

static void test_metrics(void **state)
{
	struct run r;
	struct om m;
	double requests;

	start_broker(&r);
	/* some traffic first */
	for (int i = 0; i < 100; i++) {
		assert_int_equal(ctl("--json", "stats", "loop", NULL), 0);
		if (json_num(out, "stats.0.devices.1.replies") >= 20)
			break;
		usleep(50000);
	}
	assert_int_equal(ctl("metrics", NULL), 0);
	if (check_openmetrics(out, &m))
		fail_msg("ioreqctl metrics: %s", why);
	assert_true(m.samples > 20);
	requests = sample(out, "ioreq_vm_requests_total", "{vm=\"loop\"}");
	assert_true(requests >= 40);
	assert_true(sample(out, "ioreq_device_requests_total", "{vm=\"loop\",device=\"sink\",kind=\"pio\"}") >= 20);
	assert_true(sample(out, "ioreq_device_requests_total", "{vm=\"loop\",device=\"ram\",kind=\"mmio\"}") >= 20);
	assert_int_equal(sample(out, "ioreq_device_ready", "{vm=\"loop\",device=\"sink\"}"), 1);
	/* How the requests went: in the ring (the default) or on the socket. */
	assert_true(sample(out, harness_ring() ? "ioreq_device_ring_requests_total" : "ioreq_device_socket_requests_total",
			   "{vm=\"loop\",device=\"ram\"}") >= 20);
	assert_int_equal(sample(out, harness_ring() ? "ioreq_device_socket_requests_total" : "ioreq_device_ring_requests_total",
				"{vm=\"loop\",device=\"ram\"}"),
			 0);
	assert_true(sample(out, "ioreq_device_latency_seconds_count", "{vm=\"loop\",device=\"ram\"}") >= 20);
	assert_true(sample(out, "ioreq_device_latency_seconds_sum", "{vm=\"loop\",device=\"ram\"}") > 0);
	assert_non_null(strstr(out, "# TYPE ioreq_device_latency_seconds histogram\n"));
	/* the checker itself refuses what it should */
	{
		static const char *const bad[] = {
			"# TYPE a counter\na 1\n# EOF\n",                                    /* no _total */
			"# TYPE a counter\na_total 1\n",                                     /* no EOF */
			"# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\n# TYPE a gauge\na 2\n# EOF\n", /* a twice */
			"# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 1\n# EOF\n",
			"# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 2\nh_sum 1\n# EOF\n",
			"# TYPE a gauge\na{x=\"1} 1\n# EOF\n",
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			if (!check_openmetrics(bad[i], &m))
				fail_msg("the checker took bad text %zu", i);
	}
	kill(r.pid, SIGTERM);
	harness_wait(&r, 30);
}

static void test_top_once(void **state)
{
	struct run r;
	double rate;
	char *l;

	start_broker(&r);
	assert_non_null(harness_wait_log(&r, "vm loop device ram: ready", 30));
	/* not a terminal: one frame, from two samples a second apart */
	assert_int_equal(ctl("top", NULL), 0);
	assert_non_null(strstr(out, "VM / DEVICE"));
	assert_non_null(strstr(out, "1 VMs (1 running), 2 devices (2 ready)"));
	l = strstr(out, "\nloop ");
	assert_non_null(l);
	assert_int_equal(sscanf(l, " loop running %lf", &rate), 1);
	assert_true(rate > 10); /* a request every 2 ms or so, two a round */
	l = strstr(out, "\n  sink ");
	assert_non_null(l);
	assert_int_equal(sscanf(l, " sink ready %lf", &rate), 1);
	assert_true(rate > 5);
	assert_int_equal(ctl("top", "--once", NULL), 0);
	assert_int_equal(ctl("-n", "2", "top", NULL), 0);
	assert_non_null(strstr(strstr(out, "VM / DEVICE") + 1, "VM / DEVICE")); /* two frames */
	kill(r.pid, SIGTERM);
	harness_wait(&r, 30);
}

/* On a terminal: frames until q, and the terminal as it was. */
static void test_top_tty(void **state)
{
	struct termios t;
	struct run r;
	char buf[8192];
	size_t got = 0;
	int master, status = -1;
	pid_t pid;

	start_broker(&r);
	assert_non_null(harness_wait_log(&r, "vm loop device ram: ready", 30));
	pid = forkpty(&master, NULL, NULL, NULL);
	assert_true(pid >= 0);
	if (pid == 0) {
		execl(IOREQ_BINDIR "/ioreqctl", "ioreqctl", "--socket", sock, "top", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100 && (got < 1 || !strstr(buf, "sink")); i++) {
		struct pollfd p = { .fd = master, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 100) > 0 && (n = read(master, buf + got, sizeof(buf) - 1 - got)) > 0)
			got += (size_t)n;
		buf[got] = '\0';
	}
	assert_non_null(strstr(buf, "\033[H\033[2J"));
	assert_non_null(strstr(buf, "sink"));
	/* keys one by one, unechoed, while it runs (a pty's master sees its termios) */
	assert_int_equal(tcgetattr(master, &t), 0);
	assert_false(t.c_lflag & (ICANON | ECHO));
	assert_int_equal(write(master, "q", 1), 1);
	for (int i = 0; i < 50 && waitpid(pid, &status, WNOHANG) == 0; i++) {
		char drain[1024];

		if (read(master, drain, sizeof(drain)) < 0)
			usleep(100000);
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* and the terminal as it found it */
	assert_int_equal(tcgetattr(master, &t), 0);
	assert_true(t.c_lflag & ICANON);
	assert_true(t.c_lflag & ECHO);
	close(master);
	kill(r.pid, SIGTERM);
	harness_wait(&r, 30);
}

/* The device's events after the line containing @after, in order: @want
 * (each a "from>to"), found in @log as JSON lines of ioreqctl events. */
static bool has_sequence(const char *log, const char *device, const char *const *want, size_t n)
{
	char needle[160];
	const char *p = log;

	for (size_t i = 0; i < n; i++) {
		char from[16], to[16];

		sscanf(want[i], "%15[^>]>%15s", from, to);
		snprintf(needle, sizeof(needle), "\"device\": \"%s\", \"from\": \"%s\", \"to\": \"%s\"", device,
			 from, to);
		p = strstr(p, needle);
		if (!p)
			return false;
	}
	return true;
}

static void test_events_follow(void **state)
{
	static const char *const restart[] = { "ready>down", "down>starting", "starting>ready" };
	const char *argv[] = { IOREQ_BINDIR "/ioreqctl", "--socket", sock, "events", "--follow", NULL };
	struct run r, follow;
	long long pid;

	start_broker(&r);
	assert_non_null(harness_wait_log(&r, "vm loop device ram: ready", 30));
	/* without --follow: what happened so far, one JSON object a line */
	assert_int_equal(ctl("events", NULL), 0);
	assert_non_null(strstr(out, "\"vm\": \"loop\", \"device\": \"sink\", \"from\": \"starting\", \"to\": \"ready\""));
	assert_non_null(strstr(out, "\"vm\": \"loop\", \"device\": null, \"from\": \"stopped\", \"to\": \"running\""));
	for (char *l = out; *l; l = strchr(l, '\n') + 1) {
		char line[512];

		snprintf(line, sizeof(line), "%.*s", (int)strcspn(l, "\n"), l);
		if (!json_valid(line))
			fail_msg("not a JSON object: %s", line);
		if (!strchr(l, '\n'))
			break;
	}
	/* --follow: a device killed goes down, restarts and is ready again */
	harness_start_argv(&follow, argv);
	usleep(300000);
	assert_int_equal(ctl("--json", "devices", "loop", NULL), 0);
	pid = json_num(out, "devices.0.pid");
	assert_true(pid > 0);
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	for (int i = 0; i < 200 && !has_sequence(harness_log(&follow), "sink", restart, 3); i++)
		usleep(50000);
	if (!has_sequence(harness_log(&follow), "sink", restart, 3))
		fail_msg("no down, starting, ready sequence in ioreqctl events --follow");
	assert_non_null(strstr(harness_log(&follow), "\"restarts\": 1}"));
	/* it runs until interrupted, and then ends well */
	assert_int_equal(follow.status, -1);
	kill(follow.pid, SIGINT);
	harness_wait(&follow, 10);
	assert_int_equal(follow.status, 0);
	kill(r.pid, SIGTERM);
	harness_wait(&r, 30);
}

/* The next datagram on @fd within @ms, or "". */
static const char *notify_msg(int fd, int ms)
{
	static char buf[512];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n = 0;

	buf[0] = '\0';
	if (poll(&p, 1, ms) > 0 && (n = recv(fd, buf, sizeof(buf) - 1, 0)) > 0)
		buf[n] = '\0';
	return buf;
}

/* sd_notify: READY=1 once up, STATUS= only when it changes, and a reload
 * (SIGHUP) as systemd's protocol has it: RELOADING=1 with MONOTONIC_USEC,
 * then READY=1. */
static void test_notify(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct run r;
	const char *m;
	char last_status[256] = "";
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	bool ready = false;

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", harness_tmpdir());
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", sa.sun_path, 1);
	start_broker(&r);
	unsetenv("NOTIFY_SOCKET");
	/* up, then a status line; then nothing new for a while: it does not change */
	for (int i = 0; i < 50 && !*last_status; i++) {
		m = notify_msg(fd, 100);
		ready |= !strcmp(m, "READY=1");
		if (!strncmp(m, "STATUS=", 7))
			snprintf(last_status, sizeof(last_status), "%s", m);
	}
	assert_true(ready);
	assert_true(*last_status);
	for (int i = 0; i < 25; i++) {
		m = notify_msg(fd, 100);
		if (*m && !strcmp(m, last_status))
			fail_msg("the same %s twice", m);
		if (!strncmp(m, "STATUS=", 7))
			snprintf(last_status, sizeof(last_status), "%s", m);
	}
	kill(r.pid, SIGHUP);
	do
		m = notify_msg(fd, 5000);
	while (*m && strncmp(m, "RELOADING=1", 11));
	assert_true(!strncmp(m, "RELOADING=1\nMONOTONIC_USEC=", 27));
	assert_true(strtoull(m + 27, NULL, 10) > 0);
	do
		m = notify_msg(fd, 5000);
	while (*m && strcmp(m, "READY=1"));
	assert_string_equal(m, "READY=1");
	kill(r.pid, SIGTERM);
	harness_wait(&r, 30);
	close(fd);
}

/* Logs: the journal's level prefix only when stderr is the journal's stream
 * (its device and inode in JOURNAL_STREAM; without journald to take the
 * fields, the line falls back to stderr); debug lines with --verbose. */
/* Runs @argv where /run/systemd/journal/socket is a socket of ours (a
 * mount namespace of a child: the host's journal is never touched), and
 * returns every datagram it got, separated by blank lines. */
static void journal_run(const char *const *argv, char *text, size_t len)
{
	char path[512];
	int pipefd[2], status;
	ssize_t n;
	size_t got = 0;
	pid_t pid;

	/* close-on-exec: only the child writes, and its end is the only one */
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/run/systemd/journal/socket" };
		char buf[4096];
		pid_t broker;
		int fd;

		close(pipefd[0]);
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("tmpfs", "/run/systemd", "tmpfs", 0, "mode=0755") < 0 || mkdir("/run/systemd/journal", 0755) < 0)
			_exit(3);
		fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			_exit(4);
		broker = fork();
		if (broker == 0) {
			execv(argv[0], (char *const *)argv);
			_exit(127);
		}
		/* Read as journald does, while it runs: a full queue would block its logging. */
		for (bool done = false;;) {
			struct pollfd p = { .fd = fd, .events = POLLIN };

			if (!done && waitpid(broker, &status, WNOHANG) == broker)
				done = true;
			if (poll(&p, 1, done ? 0 : 100) <= 0) {
				if (done)
					break;
				continue;
			}
			n = recv(fd, buf, sizeof(buf) - 1, 0);
			if (n <= 0)
				continue;
			buf[n++] = '\n';
			if (write(pipefd[1], buf, (size_t)n) != n)
				_exit(5);
		}
		_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 6);
	}
	close(pipefd[1]);
	while (got + 1 < len && (n = read(pipefd[0], text + got, len - 1 - got)) > 0)
		got += (size_t)n;
	text[got] = '\0';
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	snprintf(path, sizeof(path), "exit status %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail_msg("the broker under a journal of ours: %s", path);
}

static void test_logs(void **state)
{
	static const char *const script =
		"exec 2>\"$1\"; JOURNAL_STREAM=$2; [ \"$2\" = match ] && JOURNAL_STREAM=$(stat -c %d:%i \"$1\"); "
		"export JOURNAL_STREAM; exec \"$3\" --config \"$4\" --exit-with-vms";
	const char *args[] = { "--verbose", "--config", NULL, "--exit-with-vms", NULL };
	const char *quiet[] = { "--config", NULL, "--exit-with-vms", NULL };
	char file[512], text[16384];
	struct run r;

	harness_write("once.txt", "pio read 0x60 1 0\n");
	args[2] = quiet[1] = harness_write("v.yaml", "vms:\n  - name: a\n    backend: sim\n    vcpus: 1\n"
						     "    scripts: [once.txt]\n    devices:\n"
						     "      - { name: sink, program: ioreq-dev-null, pio: [\"0x60..0x63\"] }\n");
	for (int matching = 0; matching < 2; matching++) {
		const char *argv[] = { "/bin/sh", "-c", script, "sh", file, matching ? "match" : "1:1",
				       IOREQ_BINDIR "/ioreq-brokerd", args[2], NULL };
		FILE *f;
		size_t n;

		snprintf(file, sizeof(file), "%s/stderr-%d", harness_tmpdir(), matching);
		if (matching && geteuid() != 0) {
			printf("the journal's fields: not checked, a mount namespace needs root\n");
			continue;
		}
		if (matching) {
			journal_run(argv, text, sizeof(text));
			harness_keep_log("what the journal got", harness_write("journal.txt", "%s", text));
			assert_non_null(strstr(text, "MESSAGE=vm a device sink: ready (pid "));
			assert_non_null(strstr(text, "PRIORITY=6\nSYSLOG_IDENTIFIER=ioreq-brokerd\nVM=a\nDEVICE=sink\n"
						     "MESSAGE=vm a device sink: ready"));
			assert_non_null(strstr(text, "VM=a\nMESSAGE=vm a: stopped with status 0"));
			continue;
		}
		harness_start_argv(&r, argv);
		harness_wait(&r, 60);
		assert_int_equal(r.status, 0);
		f = fopen(file, "r");
		assert_non_null(f);
		n = fread(text, 1, sizeof(text) - 1, f);
		fclose(f);
		text[n] = '\0';
		harness_keep_log("stderr, JOURNAL_STREAM elsewhere", file);
		assert_non_null(strstr(text, "ioreq-brokerd: control: serving "));
		assert_null(strstr(text, "<6>"));
	}
	/* --verbose: what the broker does, step by step */
	assert_int_equal(harness_run(&r, args, 60), 0);
	assert_non_null(strstr(harness_log(&r), "loaded: 1 VMs"));
	assert_non_null(strstr(harness_log(&r), "vm a: its thread takes the requests of 1 vcpus"));
	assert_non_null(strstr(harness_log(&r), "vm a device sink: instance 1 on "));
	assert_non_null(strstr(harness_log(&r), "control: serving "));
	assert_int_equal(harness_run(&r, quiet, 60), 0);
	assert_null(strstr(harness_log(&r), "loaded: 1 VMs"));
	assert_non_null(strstr(harness_log(&r), "control: serving "));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		harness_test(test_metrics),
		harness_test(test_events_follow),
		harness_test(test_top_once),
		harness_test(test_top_tty),
		harness_test(test_notify),
		harness_test(test_logs),
	};

	return harness_run_group("observe", tests);
}
