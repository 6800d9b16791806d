#include "suggest.h"

#include <stdint.h>
#include <string.h>

size_t suggest_distance(const char *a, const char *b)
{
	/* three rows of the matrix: two back for a swap, the last, this one */
	size_t rows[3][SUGGEST_MAX_LEN + 1], la = strlen(a), lb = strlen(b);
	size_t *back2 = rows[0], *back = rows[1], *cur = rows[2];

	if (la > SUGGEST_MAX_LEN || lb > SUGGEST_MAX_LEN)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		back[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t *t;

		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] != b[j - 1], d = back[j - 1] + cost;

			if (back[j] + 1 < d)
				d = back[j] + 1;
			if (cur[j - 1] + 1 < d)
				d = cur[j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && back2[j - 2] + 1 < d)
				d = back2[j - 2] + 1;
			cur[j] = d;
		}
		t = back2;
		back2 = back;
		back = cur;
		cur = t;
	}
	return back[lb];
}

void suggest_init(struct suggest *s, const char *word)
{
	*s = (struct suggest){ .word = word, .best_distance = SIZE_MAX };
}

void suggest_add(struct suggest *s, const char *candidate)
{
	size_t d = suggest_distance(s->word, candidate), longer = strlen(s->word);

	if (strlen(candidate) > longer)
		longer = strlen(candidate);
	/* a third of the length, but a two-letter word may have one typo */
	if (d == 0 || d == SIZE_MAX || d > (longer >= 6 ? longer / 3 : 1) || d >= s->best_distance)
		return;
	s->best = candidate;
	s->best_distance = d;
}

const char *suggest_best(const struct suggest *s)
{
	return s->best;
}
