/* "did you mean ...?": the candidate nearest to a word that matched none,
 * by Damerau-Levenshtein distance (optimal string alignment: insertions,
 * deletions, substitutions and swaps of two neighbours), when it is near
 * enough to be a typo: at most a third of the longer word's length (one
 * edit for words under six letters), and at least one edit. ioreqctl's commands and options and the YAML loader's keys
 * use it alike.
 *
 *     struct suggest s;
 *     suggest_init(&s, "deadine_ms");
 *     for (each key) suggest_add(&s, key);
 *     if (suggest_best(&s)) ... "did you mean \"%s\"?" */
#ifndef IOREQ_SUGGEST_H
#define IOREQ_SUGGEST_H

#include <stddef.h>

/* Words longer than this get no suggestion. */
#define SUGGEST_MAX_LEN 64

struct suggest {
	const char *word;
	const char *best;
	size_t best_distance;
};

void suggest_init(struct suggest *s, const char *word);

/* Considers @candidate (borrowed: it must outlive suggest_best's use). */
void suggest_add(struct suggest *s, const char *candidate);

/* The nearest candidate near enough, the first of equals; NULL if none. */
const char *suggest_best(const struct suggest *s);

/* The distance between @a and @b; SIZE_MAX when either is longer than
 * SUGGEST_MAX_LEN. */
size_t suggest_distance(const char *a, const char *b);

#endif
