#include "journal.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include <systemd/sd-journal.h>

#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"

/* @word followed by a name (the config's characters) at *@p: the name into @buf. */
static bool take(const char **p, const char *word, char *buf, size_t len)
{
	size_t wl = strlen(word), n;

	if (strncmp(*p, word, wl))
		return false;
	n = strspn(*p + wl, NAME_CHARS);
	if (!n || n >= len)
		return false;
	snprintf(buf, len, "%.*s", (int)n, *p + wl);
	*p += wl + n;
	return true;
}

void journal_fields_of(const char *msg, struct journal_fields *ret)
{
	const char *p = msg, *req;

	*ret = (struct journal_fields){ 0 };
	if (take(&p, "vm ", ret->vm, sizeof(ret->vm)) && !take(&p, " device ", ret->device, sizeof(ret->device)))
		ret->device[0] = '\0';
	for (req = strstr(msg, "request "); req; req = strstr(req + 1, "request ")) {
		size_t n = strspn(req + 8, "0123456789");

		if (n && n < sizeof(ret->request_id)) {
			snprintf(ret->request_id, sizeof(ret->request_id), "%.*s", (int)n, req + 8);
			break;
		}
	}
}

void journal_sink(int level, int err, const char *prefix, const char *msg)
{
	char f[7][160];
	struct iovec iov[7];
	struct journal_fields jf;
	int n = 0;

	journal_fields_of(msg, &jf);
	snprintf(f[n++], sizeof(f[0]), "PRIORITY=%d", level);
	snprintf(f[n++], sizeof(f[0]), "SYSLOG_IDENTIFIER=%s", prefix);
	if (jf.vm[0])
		snprintf(f[n++], sizeof(f[0]), "VM=%s", jf.vm);
	if (jf.device[0])
		snprintf(f[n++], sizeof(f[0]), "DEVICE=%s", jf.device);
	if (jf.request_id[0])
		snprintf(f[n++], sizeof(f[0]), "REQUEST_ID=%s", jf.request_id);
	if (err > 0)
		snprintf(f[n++], sizeof(f[0]), "ERRNO=%d", err);
	for (int i = 0; i < n; i++)
		iov[i] = (struct iovec){ .iov_base = f[i], .iov_len = strlen(f[i]) };
	/* The message last, whole: it may be longer than the other fields. */
	{
		char m[1100];

		snprintf(m, sizeof(m), "MESSAGE=%s", msg);
		iov[n] = (struct iovec){ .iov_base = m, .iov_len = strlen(m) };
		if (sd_journal_sendv(iov, n + 1) < 0)
			fprintf(stderr, "<%d>%s: %s\n", level, prefix, msg);
	}
}
