/* control.c: the control socket's transport, with a handler of the test's:
 * many clients at once, an idle one delays nobody, a reply too large is an
 * error the client sees, strangers are refused, one broker per socket. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "control.h"

static char dir[64], path[96];
static _Atomic unsigned handled;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* vm_start waits at the gate until the test lets it through. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static unsigned gate_passes;

static void gate_open(unsigned passes)
{
	pthread_mutex_lock(&gate_lock);
	gate_passes += passes;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

static void gate_pass(void)
{
	pthread_mutex_lock(&gate_lock);
	while (!gate_passes)
		pthread_cond_wait(&gate_cond, &gate_lock);
	gate_passes--;
	pthread_mutex_unlock(&gate_lock);
}

/* "vms" with a VM name of N: a reply with N VMs of long names; "vm_stop":
 * takes 300 ms, like stopping a VM; "vm_start": waits at the gate. */
static void handler(void *opaque, const Ioreqctl__CtlRequest *q, struct control_reply *r)
{
	atomic_fetch_add(&handled, 1);
	if (q->cmd_case == IOREQCTL__CTL_REQUEST__CMD_VM_START)
		gate_pass();
	if (q->cmd_case == IOREQCTL__CTL_REQUEST__CMD_VMS) {
		size_t n = strtoul(q->vms->vm, NULL, 10);
		Ioreqctl__VmInfo *v = control_alloc(r, n, sizeof(*v));
		Ioreqctl__VmInfo **p = control_alloc(r, n, sizeof(*p));
		char *name = control_alloc(r, 1, 1024);

		assert_non_null(v);
		assert_non_null(p);
		assert_non_null(name);
		memset(name, 'x', 1023);
		for (size_t i = 0; i < n; i++) {
			ioreqctl__vm_info__init(&v[i]);
			v[i].name = name;
			p[i] = &v[i];
		}
		control_msg(r)->vms = p;
		control_msg(r)->n_vms = n;
		control_message(r, "%zu VMs", n);
		return;
	}
	if (q->cmd_case == IOREQCTL__CTL_REQUEST__CMD_VM_STOP)
		usleep(300000);
	control_message(r, "done");
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/ioreq-ctl.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/control", dir);
	atomic_store(&handled, 0);
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	rmdir(dir);
	return 0;
}

static int connect_to(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Sends one request on @fd and returns the reply (the caller frees it). */
static Ioreqctl__CtlReply *ask_on(int fd, Ioreqctl__CtlRequest *q)
{
	size_t len = ioreqctl__ctl_request__get_packed_size(q);
	uint8_t *in = malloc(2 << 20), out[4096];
	Ioreqctl__CtlReply *r;
	ssize_t n;

	assert_non_null(in);
	ioreqctl__ctl_request__pack(q, out);
	/* A stranger is answered before it speaks: its send may find the
	 * connection closed, the answer waiting all the same. */
	if (send(fd, out, len, MSG_NOSIGNAL) != (ssize_t)len)
		assert_int_equal(errno, EPIPE);
	n = recv(fd, in, 2 << 20, 0);
	assert_true(n >= 0);
	r = ioreqctl__ctl_reply__unpack(NULL, (size_t)n, in);
	free(in);
	return r;
}

static Ioreqctl__CtlReply *ask(Ioreqctl__CtlRequest__CmdCase cmd, const char *vm)
{
	Ioreqctl__CtlRequest q = IOREQCTL__CTL_REQUEST__INIT;
	Ioreqctl__Target t = IOREQCTL__TARGET__INIT;
	Ioreqctl__CtlReply *r;
	int fd = connect_to();

	t.vm = (char *)vm;
	q.cmd_case = cmd;
	q.vms = &t; /* every Target of the oneof shares the slot */
	r = ask_on(fd, &q);
	close(fd);
	assert_non_null(r);
	return r;
}

static void test_answer(void **state)
{
	struct control *c;
	Ioreqctl__CtlReply *r;

	assert_int_equal(control_open(path, NULL, handler, NULL, &c), 0);
	r = ask(IOREQCTL__CTL_REQUEST__CMD_VMS, "3");
	assert_int_equal(r->error, 0);
	assert_int_equal(r->n_vms, 3);
	assert_string_equal(r->message, "3 VMs");
	ioreqctl__ctl_reply__free_unpacked(r, NULL);
	control_close(c);
	/* The socket it made is gone with it. */
	assert_int_equal(access(path, F_OK), -1);
}

/* A client that connects and says nothing, and a slow command, delay
 * nobody else. */
static void test_idle_and_slow_clients(void **state)
{
	struct control *c;
	Ioreqctl__CtlReply *r;
	int idle;
	double t0;

	assert_int_equal(control_open(path, NULL, handler, NULL, &c), 0);
	idle = connect_to();
	t0 = now();
	r = ask(IOREQCTL__CTL_REQUEST__CMD_STATUS, "");
	assert_true(now() - t0 < 1.0);
	assert_string_equal(r->message, "done");
	ioreqctl__ctl_reply__free_unpacked(r, NULL);
	close(idle);
	control_close(c);
}

struct slow {
	double took;
};

static void *slow_client(void *arg)
{
	struct slow *s = arg;
	double t0 = now();
	Ioreqctl__CtlReply *r = ask(IOREQCTL__CTL_REQUEST__CMD_VM_STOP, "v");

	s->took = now() - t0;
	ioreqctl__ctl_reply__free_unpacked(r, NULL);
	return NULL;
}

static void test_concurrent(void **state)
{
	struct slow s[8];
	pthread_t t[8];
	struct control *c;
	double t0;

	assert_int_equal(control_open(path, NULL, handler, NULL, &c), 0);
	t0 = now();
	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, slow_client, &s[i]);
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	/* Eight 300 ms commands, served side by side, not one after another. */
	assert_true(now() - t0 < 8 * 0.3 / 2);
	assert_int_equal(atomic_load(&handled), 8);
	control_close(c);
}

/* A reply over the limit is an error the client reads, not silence. */
static void test_reply_too_large(void **state)
{
	struct control *c;
	Ioreqctl__CtlReply *r;

	assert_int_equal(control_open(path, NULL, handler, NULL, &c), 0);
	r = ask(IOREQCTL__CTL_REQUEST__CMD_VMS, "2000");
	assert_int_equal(r->error, -EMSGSIZE);
	assert_non_null(strstr(r->message, "the reply is too large"));
	assert_int_equal(r->n_vms, 0);
	ioreqctl__ctl_reply__free_unpacked(r, NULL);
	control_close(c);
}

/* More clients at once than it serves: the next one waits its turn, and
 * is served as soon as one of them is done (the idle ones time out). */
static void test_too_many(void **state)
{
	int fds[CONTROL_MAX_CLIENTS];
	struct control *c;
	Ioreqctl__CtlReply *r;
	double t0;

	assert_int_equal(control_open(path, NULL, handler, NULL, &c), 0);
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		fds[i] = connect_to();
	t0 = now();
	r = ask(IOREQCTL__CTL_REQUEST__CMD_STATUS, "");
	assert_int_equal(r->error, 0);
	assert_true(now() - t0 > 2.0 && now() - t0 < 15.0);
	ioreqctl__ctl_reply__free_unpacked(r, NULL);
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		close(fds[i]);
	control_close(c);
}

static void *gated_client(void *arg)
{
	ioreqctl__ctl_reply__free_unpacked(ask(IOREQCTL__CTL_REQUEST__CMD_VM_START, "v"), NULL);
	return NULL;
}

static void wait_handled(unsigned n)
{
	while (atomic_load(&handled) < n)
		usleep(1000);
}

/* Full, then one more waiting in the backlog, taken when a slot frees: full
 * again with nobody waiting. When the others are done, there is nobody to
 * accept, and closing must not wait for a client that never comes (the
 * accepting thread once blocked in accept, on a connection poll had seen
 * before it was full). */
static void test_full_then_drained(void **state)
{
	pthread_t t[CONTROL_MAX_CLIENTS + 1];
	struct control *c;

	assert_int_equal(control_open(path, NULL, handler, NULL, &c), 0);
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		pthread_create(&t[i], NULL, gated_client, NULL);
	wait_handled(CONTROL_MAX_CLIENTS);
	pthread_create(&t[CONTROL_MAX_CLIENTS], NULL, gated_client, NULL);
	usleep(100000);
	assert_int_equal(atomic_load(&handled), CONTROL_MAX_CLIENTS);
	gate_open(1);
	wait_handled(CONTROL_MAX_CLIENTS + 1);
	gate_open(CONTROL_MAX_CLIENTS);
	for (int i = 0; i <= CONTROL_MAX_CLIENTS; i++)
		pthread_join(t[i], NULL);
	/* A hang here is the failure: the alarm ends the test. */
	alarm(20);
	control_close(c);
	alarm(0);
}

/* Neither root, nor our user, nor in the group: refused. */
static void test_stranger_refused(void **state)
{
	struct control *c;
	pid_t pid;
	int status;

	if (geteuid() != 0) {
		skip();
		return;
	}
	assert_int_equal(control_open(path, NULL, handler, NULL, &c), 0);
	chmod(dir, 0755);
	chmod(path, 0666);
	pid = fork();
	if (pid == 0) {
		Ioreqctl__CtlReply *r;

		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(2);
		r = ask(IOREQCTL__CTL_REQUEST__CMD_STATUS, "");
		if (r && r->error != -EACCES)
			fprintf(stderr, "error %d: %s\n", r->error, r->message);
		_exit(r && r->error == -EACCES ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(atomic_load(&handled), 0);
	control_close(c);
}

/* A second broker on the same path does not take the first one's socket. */
static void test_one_per_path(void **state)
{
	struct control *c, *d = NULL;
	Ioreqctl__CtlReply *r;

	assert_int_equal(control_open(path, NULL, handler, NULL, &c), 0);
	assert_int_equal(control_open(path, NULL, handler, NULL, &d), -EADDRINUSE);
	assert_null(d);
	r = ask(IOREQCTL__CTL_REQUEST__CMD_STATUS, "");
	assert_string_equal(r->message, "done");
	ioreqctl__ctl_reply__free_unpacked(r, NULL);
	control_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_and_slow_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reply_too_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_then_drained, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stranger_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_per_path, setup, teardown),
	};

	return cmocka_run_group_tests_name("control", tests, NULL, NULL);
}
