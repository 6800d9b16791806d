/* loop.c: callbacks on the loop's own thread, work handed to it from
 * others, and a source removed mid-batch never called again. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop.h"

struct probe {
	struct loop *l;
	int fd;
	struct loop_source *src;
	_Atomic unsigned calls;
	_Atomic bool on_loop;
	struct probe *victim; /* removed by this one's callback */
};

static void on_fd(void *opaque, uint32_t events)
{
	struct probe *p = opaque;
	eventfd_t v;

	eventfd_read(p->fd, &v);
	atomic_store(&p->on_loop, loop_is_current(p->l));
	if (p->victim)
		p->victim->src = loop_remove(p->l, p->victim->src);
	atomic_fetch_add(&p->calls, 1);
}

static void count(void *arg)
{
	atomic_fetch_add((_Atomic unsigned *)arg, 1);
}

struct call_arg {
	struct loop *l;
	bool on_loop;
};

static void check_thread(void *arg)
{
	struct call_arg *c = arg;

	c->on_loop = loop_is_current(c->l);
}

static void test_fd_and_call(void **state)
{
	struct probe p = { 0 };
	struct call_arg c;

	assert_int_equal(loop_new(&p.l), 0);
	p.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_int_equal(loop_add(p.l, p.fd, EPOLLIN, on_fd, &p, &p.src), 0);
	/* Before the thread runs, a call runs where it is made. */
	c = (struct call_arg){ .l = p.l, .on_loop = true };
	loop_call(p.l, check_thread, &c);
	assert_false(c.on_loop);
	assert_int_equal(loop_start(p.l, "test-loop"), 0);
	eventfd_write(p.fd, 1);
	/* A call returns after everything queued before it ran. */
	for (int i = 0; i < 1000 && !atomic_load(&p.calls); i++)
		usleep(1000);
	loop_call(p.l, check_thread, &c);
	assert_true(c.on_loop);
	assert_int_equal(atomic_load(&p.calls), 1);
	assert_true(atomic_load(&p.on_loop));
	assert_false(loop_is_current(p.l));
	p.l = loop_free(p.l);
	close(p.fd);
}

/* A job posted again before it ran runs once; posted after, again. */
static void test_post_once(void **state)
{
	_Atomic unsigned runs = 0;
	struct loop_job job = { .fn = count, .arg = (void *)&runs };
	struct call_arg c;
	struct loop *l;

	assert_int_equal(loop_new(&l), 0);
	loop_post(l, &job);
	loop_post(l, &job);
	assert_int_equal(loop_start(l, "test-loop"), 0);
	c.l = l;
	loop_call(l, check_thread, &c);
	assert_int_equal(atomic_load(&runs), 1);
	loop_post(l, &job);
	loop_call(l, check_thread, &c);
	assert_int_equal(atomic_load(&runs), 2);
	/* Posted and not run when the loop stops: it still runs. */
	loop_post(l, &job);
	l = loop_free(l);
	assert_int_equal(atomic_load(&runs), 3);
}

static void make_ready(void *arg)
{
	struct probe *p = arg;

	/* Both ready in one batch: whichever runs first removes the other. */
	eventfd_write(p[0].fd, 1);
	eventfd_write(p[1].fd, 1);
}

static void test_remove_mid_batch(void **state)
{
	struct probe p[2] = { 0 };
	struct loop *l;

	assert_int_equal(loop_new(&l), 0);
	for (int i = 0; i < 2; i++) {
		p[i].l = l;
		p[i].fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		assert_int_equal(loop_add(l, p[i].fd, EPOLLIN, on_fd, &p[i], &p[i].src), 0);
	}
	p[0].victim = &p[1];
	p[1].victim = &p[0];
	make_ready(p);
	assert_int_equal(loop_start(l, "test-loop"), 0);
	for (int i = 0; i < 1000 && atomic_load(&p[0].calls) + atomic_load(&p[1].calls) == 0; i++)
		usleep(1000);
	usleep(20000);
	l = loop_free(l);
	assert_int_equal(atomic_load(&p[0].calls) + atomic_load(&p[1].calls), 1);
	close(p[0].fd);
	close(p[1].fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fd_and_call),
		cmocka_unit_test(test_post_once),
		cmocka_unit_test(test_remove_mid_batch),
	};

	return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
