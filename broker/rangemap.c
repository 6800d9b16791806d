#include "rangemap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Index of the first entry whose end is >= @addr (n if none). */
static size_t lower_bound(const struct rangemap *m, uint64_t addr)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->v[mid].end < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int rangemap_add(struct rangemap *m, uint64_t start, uint64_t end, void *owner, uint32_t tag,
		 const struct rangemap_entry **ret_conflict)
{
	size_t i;

	if (end < start)
		return -EINVAL;
	i = lower_bound(m, start);
	if (i < m->n && m->v[i].start <= end) {
		if (ret_conflict)
			*ret_conflict = &m->v[i];
		return -EEXIST;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 8;
		struct rangemap_entry *v = reallocarray(m->v, cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		m->v = v;
		m->cap = cap;
	}
	memmove(&m->v[i + 1], &m->v[i], (m->n - i) * sizeof(*m->v));
	m->v[i] = (struct rangemap_entry){ .start = start, .end = end, .owner = owner, .tag = tag };
	m->n++;
	return 0;
}

const struct rangemap_entry *rangemap_find(const struct rangemap *m, uint64_t start, uint64_t end)
{
	size_t i = lower_bound(m, start);

	if (i < m->n && m->v[i].start <= start && end <= m->v[i].end)
		return &m->v[i];
	return NULL;
}

static void remove_at(struct rangemap *m, size_t i)
{
	memmove(&m->v[i], &m->v[i + 1], (m->n - i - 1) * sizeof(*m->v));
	m->n--;
}

int rangemap_remove(struct rangemap *m, uint64_t start, uint64_t end, const void *owner)
{
	size_t i = lower_bound(m, start);

	if (i == m->n || m->v[i].start != start || m->v[i].end != end || m->v[i].owner != owner)
		return -ENOENT;
	remove_at(m, i);
	return 0;
}

void rangemap_remove_tagged(struct rangemap *m, const void *owner, uint32_t flag)
{
	size_t j = 0;

	for (size_t i = 0; i < m->n; i++)
		if ((owner && m->v[i].owner != owner) || !(m->v[i].tag & flag))
			m->v[j++] = m->v[i];
	m->n = j;
}

void rangemap_fini(struct rangemap *m)
{
	free(m->v);
	*m = (struct rangemap){ 0 };
}
