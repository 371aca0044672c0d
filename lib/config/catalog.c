/* SPDX-License-Identifier: BSD-3-Clause */
/* The metric catalog: the [metrics] section of an INI file, checked line by line, indexed. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tally_catalog.h"

#define WORDS_MAX 3 /* NAME UNIT KIND */
/* The most of a bad word an error quotes (printf's precision): the line stays one line. */
#define SHOWN(len) ((int)((len) > 80 ? 80 : (len)))
#define LOAD_SLOTS (1u << 17) /* the load's hash of ids and of names: 2 x TALLY_CATALOG_MAX */

_Static_assert(LOAD_SLOTS >= 2 * TALLY_CATALOG_MAX, "LOAD_SLOTS must keep the load below 1/2");

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int
is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
}

/* The characters of names and units: what a Redis value, a shell and a CSV take as they are. */
static int
is_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '.' || ch == ':' || ch == '/' || ch == '-';
}

/* NULL when s[0..len) is a good NAME (unit: a good UNIT), else what is wrong with it. */
static const char *
word_problem(const char *s, size_t len, size_t max, int unit)
{
	size_t i, digits = 0;

	if (len > max)
		return unit ? "longer than 16 characters" : "longer than 64 characters";
	for (i = 0; i < len; i++) {
		if (!is_name_char(s[i]))
			return "a character outside A-Z a-z 0-9 _ . : / -";
		digits += s[i] >= '0' && s[i] <= '9';
	}
	/* tally-query reads a METRIC of digits as an id, one starting with '-' as an option */
	if (!unit && digits == len)
		return "all digits (it would read as an id)";
	if (!unit && s[0] == '-')
		return "starts with '-'";
	return NULL;
}

static int
kind_of(const char *s, size_t len)
{
	unsigned int k;

	for (k = TALLY_KIND_COUNTER; k <= TALLY_KIND_MAX; k++)
		if (strlen(tally_kind_name(k)) == len && memcmp(tally_kind_name(k), s, len) == 0)
			return (int)k;
	return 0;
}

int
tally_catalog_parse_entry(const char *text, size_t len, struct tally_catalog_entry *e,
			  char *why, size_t whylen)
{
	const char *w[WORDS_MAX + 1];
	size_t wl[WORDS_MAX + 1], i = 0, n = 0;
	const char *problem;
	int kind;

	while (i < len) {
		while (i < len && is_blank(text[i]))
			i++;
		if (i == len)
			break;
		if (n == WORDS_MAX) {
			/* the rest of the text, blanks at its end left out */
			while (len > i && is_blank(text[len - 1]))
				len--;
			return fail(why, whylen, "extra words '%.*s' after NAME UNIT KIND",
				    SHOWN(len - i), text + i);
		}
		w[n] = text + i;
		while (i < len && !is_blank(text[i]))
			i++;
		wl[n] = (size_t)(text + i - w[n]);
		n++;
	}
	if (n == 0)
		return fail(why, whylen, "missing the name and the kind (NAME [UNIT] KIND)");
	if (n == 1 && kind_of(w[0], wl[0]) != 0)
		return fail(why, whylen, "missing the name before the kind '%.*s'", SHOWN(wl[0]),
			    w[0]);
	if (n == 1)
		return fail(why, whylen,
			    "missing the kind after '%.*s' (counter, gauge, histogram or distinct)",
			    SHOWN(wl[0]), w[0]);
	problem = word_problem(w[0], wl[0], TALLY_CATALOG_NAME_MAX, 0);
	if (problem != NULL)
		return fail(why, whylen, "bad name '%.*s': %s", SHOWN(wl[0]), w[0], problem);
	if (n == 3 && !(wl[1] == 1 && w[1][0] == '-')) {
		problem = word_problem(w[1], wl[1], TALLY_CATALOG_UNIT_MAX, 1);
		if (problem != NULL)
			return fail(why, whylen, "bad unit '%.*s': %s ('-' for none)",
				    SHOWN(wl[1]), w[1], problem);
	}
	kind = kind_of(w[n - 1], wl[n - 1]);
	if (kind == 0)
		return fail(why, whylen,
			    "unknown kind '%.*s' (counter, gauge, histogram or distinct)",
			    SHOWN(wl[n - 1]), w[n - 1]);
	memcpy(e->name, w[0], wl[0]);
	e->name[wl[0]] = '\0';
	e->unit[0] = '\0';
	if (n == 3 && !(wl[1] == 1 && w[1][0] == '-')) {
		memcpy(e->unit, w[1], wl[1]);
		e->unit[wl[1]] = '\0';
	}
	e->kind = (uint8_t)kind;
	return 0;
}

int
tally_catalog_value(const struct tally_catalog_entry *e, char *buf, size_t len)
{
	return snprintf(buf, len, "%s %s %s", e->name, e->unit[0] != '\0' ? e->unit : "-",
			tally_kind_name(e->kind));
}

static uint32_t
id_hash(uint32_t id)
{
	return (uint32_t)(((uint64_t)id * 0x9e3779b97f4a7c15ull) >> 32);
}

/* FNV-1a */
static uint32_t
name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

/* The slot of name in an index of entries (index + 1 per slot): its own, or the empty one. */
static uint32_t *
name_slot(uint32_t *slots, uint32_t mask, const struct tally_catalog_entry *entry,
	  const char *name)
{
	uint32_t i = name_hash(name) & mask;

	while (slots[i] != 0 && strcmp(entry[slots[i] - 1].name, name) != 0)
		i = (i + 1) & mask;
	return &slots[i];
}

/* What a load works with; freed when it ends, whatever the outcome. */
struct load {
	const char *path;
	struct tally_catalog_entry *entry; /* in file order */
	uint32_t *line;			   /* of each entry */
	uint32_t n, cap;
	uint32_t *ids;	 /* LOAD_SLOTS: entry index + 1 */
	uint32_t *names; /* LOAD_SLOTS: entry index + 1 */
};

static int
load_add(struct load *l, uint32_t lineno, uint32_t id, const struct tally_catalog_entry *e,
	 char *err, size_t errlen)
{
	uint32_t i = id_hash(id) & (LOAD_SLOTS - 1), *slot;

	while (l->ids[i] != 0 && l->entry[l->ids[i] - 1].id != id)
		i = (i + 1) & (LOAD_SLOTS - 1);
	if (l->ids[i] != 0)
		return fail(err, errlen, "%s:%u: id %u is already given on line %u", l->path,
			    lineno, id, l->line[l->ids[i] - 1]);
	slot = name_slot(l->names, LOAD_SLOTS - 1, l->entry, e->name);
	if (*slot != 0)
		return fail(err, errlen, "%s:%u: name '%s' is already given on line %u (id %u)",
			    l->path, lineno, e->name, l->line[*slot - 1], l->entry[*slot - 1].id);
	if (l->n == TALLY_CATALOG_MAX)
		return fail(err, errlen, "%s:%u: more than %u metrics", l->path, lineno,
			    TALLY_CATALOG_MAX);
	if (l->n == l->cap) {
		uint32_t cap = l->cap ? l->cap * 2 : 64;
		struct tally_catalog_entry *ne = realloc(l->entry, cap * sizeof(*ne));
		uint32_t *nl;

		if (ne == NULL)
			return fail(err, errlen, "%s: out of memory", l->path);
		l->entry = ne;
		nl = realloc(l->line, cap * sizeof(*nl));
		if (nl == NULL)
			return fail(err, errlen, "%s: out of memory", l->path);
		l->line = nl;
		l->cap = cap;
	}
	l->entry[l->n] = *e;
	l->entry[l->n].id = id;
	l->line[l->n] = lineno;
	l->n++;
	l->ids[i] = l->n;
	*slot = l->n;
	return 0;
}

/* ID: decimal digits, no sign, at most UINT32_MAX. */
static int
parse_id(const char *s, size_t len, uint32_t *id)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 10)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return -1;
	*id = (uint32_t)v;
	return 0;
}

/* One line of [metrics], comments and surrounding blanks already cut off. */
static int
load_line(struct load *l, uint32_t lineno, const char *s, size_t len, char *err, size_t errlen)
{
	const char *eq = memchr(s, '=', len);
	struct tally_catalog_entry e;
	size_t klen;
	char why[256];
	uint32_t id;

	if (eq == NULL)
		return fail(err, errlen, "%s:%u: '%.*s' is not ID = NAME [UNIT] KIND", l->path,
			    lineno, SHOWN(len), s);
	for (klen = (size_t)(eq - s); klen > 0 && is_blank(s[klen - 1]); klen--)
		;
	if (parse_id(s, klen, &id) != 0)
		return fail(err, errlen, "%s:%u: bad id '%.*s': not an integer in [0, 4294967295]",
			    l->path, lineno, SHOWN(klen), s);
	memset(&e, 0, sizeof(e));
	if (tally_catalog_parse_entry(eq + 1, len - (size_t)(eq + 1 - s), &e, why, sizeof(why)) !=
	    0)
		return fail(err, errlen, "%s:%u: id %u: %s", l->path, lineno, id, why);
	return load_add(l, lineno, id, &e, err, errlen);
}

/*
 * The name of a section line "[name]" (blanks allowed inside, anything after the ']' not
 * read, as rte_cfgfile does), or NULL when there is no ']'. Cuts s.
 */
static const char *
section_name(char *s, size_t len)
{
	char *end = memchr(s, ']', len);

	if (end == NULL)
		return NULL;
	for (s++; s < end && is_blank(*s); s++)
		;
	while (end > s && is_blank(end[-1]))
		end--;
	*end = '\0';
	return s;
}

FILE *
tally_fopen_regular(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	FILE *f;

	if (fd < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file (%s)", path,
			 S_ISFIFO(st.st_mode)  ? "a FIFO"
			 : S_ISDIR(st.st_mode) ? "a directory"
			 : S_ISSOCK(st.st_mode) ? "a socket"
						: "a device");
		close(fd);
		return NULL;
	}
	/* a regular file: reads do not block, the flag can go */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	f = fdopen(fd, "r");
	if (f == NULL) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		close(fd);
	}
	return f;
}

/* Read path, keeping the lines of its [metrics] section; 0 or -1 with err. */
static int
load_file(struct load *l, char *err, size_t errlen)
{
	char why[600];
	FILE *f = tally_fopen_regular(l->path, why, sizeof(why));
	uint32_t lineno = 0, section_line = 0;
	int in_metrics = 0, rc = 0;
	char *buf = NULL;
	size_t cap = 0;

	if (f == NULL)
		return fail(err, errlen, "%s", why);
	errno = 0;
	while (rc == 0 && getline(&buf, &cap, f) >= 0) {
		char *s = buf;
		/* ';' and '#' are no characters of an entry: a comment starts at either */
		size_t len = strcspn(s, ";#");
		const char *sec;

		lineno++;
		while (len > 0 && is_blank(s[len - 1]))
			len--;
		while (len > 0 && is_blank(*s)) {
			s++;
			len--;
		}
		if (len == 0)
			continue;
		if (*s == '[') {
			sec = section_name(s, len);
			in_metrics = sec != NULL && strcmp(sec, TALLY_CATALOG_SECTION) == 0;
			if (in_metrics && section_line != 0)
				rc = fail(err, errlen,
					  "%s:%u: section [%s] again (first on line %u)", l->path,
					  lineno, TALLY_CATALOG_SECTION, section_line);
			if (in_metrics)
				section_line = lineno;
			continue;
		}
		if (in_metrics)
			rc = load_line(l, lineno, s, len, err, errlen);
	}
	/* getline() fails the same way at the end of the file and out of memory */
	if (rc == 0 && (ferror(f) || errno == ENOMEM))
		rc = fail(err, errlen, "cannot read %s: %s", l->path, strerror(errno));
	if (rc == 0 && section_line == 0)
		rc = fail(err, errlen, "%s: no [%s] section", l->path, TALLY_CATALOG_SECTION);
	free(buf);
	fclose(f);
	return rc;
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct tally_catalog_entry *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

/* The catalog of the n entries loaded (taken over, sorted here); NULL when out of memory. */
static struct tally_catalog *
catalog_build(struct tally_catalog_entry *entry, uint32_t n)
{
	struct tally_catalog *c = calloc(1, sizeof(*c));
	uint32_t slots = 16, i, first_sparse;
	uint32_t *sid;
	uint8_t *skind;

	if (c == NULL)
		return NULL;
	c->entry = entry;
	c->n = n;
	if (n > 1)
		qsort(entry, n, sizeof(*entry), entry_cmp);
	for (first_sparse = 0; first_sparse < n && entry[first_sparse].id < TALLY_CATALOG_DENSE_IDS;
	     first_sparse++)
		;
	c->nsparse = n - first_sparse;
	while (slots < 2 * n)
		slots *= 2;
	c->name_mask = slots - 1;
	c->dense = calloc(TALLY_CATALOG_DENSE_IDS, 1);
	c->by_name = calloc(slots, sizeof(*c->by_name));
	sid = malloc((c->nsparse ? c->nsparse : 1) * (sizeof(*sid) + 1));
	if (c->dense == NULL || c->by_name == NULL || sid == NULL) {
		free(sid);
		c->entry = NULL; /* the caller's still */
		tally_catalog_free(c);
		return NULL;
	}
	skind = (uint8_t *)(sid + c->nsparse);
	for (i = 0; i < n; i++) {
		if (i < first_sparse) {
			c->dense[entry[i].id] = entry[i].kind;
		} else {
			sid[i - first_sparse] = entry[i].id;
			skind[i - first_sparse] = entry[i].kind;
		}
		*name_slot(c->by_name, c->name_mask, entry, entry[i].name) = i + 1;
	}
	c->sparse_id = sid;
	c->sparse_kind = skind;
	return c;
}

struct tally_catalog *
tally_catalog_load(const char *path, char *err, size_t errlen)
{
	struct load l = {.path = path};
	struct tally_catalog *c = NULL;
	int rc = -1;

	l.ids = calloc(LOAD_SLOTS, sizeof(*l.ids));
	l.names = calloc(LOAD_SLOTS, sizeof(*l.names));
	if (l.ids == NULL || l.names == NULL)
		fail(err, errlen, "%s: out of memory", path);
	else
		rc = load_file(&l, err, errlen);
	if (rc == 0) {
		c = catalog_build(l.entry, l.n);
		if (c == NULL)
			fail(err, errlen, "%s: out of memory", path);
	}
	if (c == NULL)
		free(l.entry);
	free(l.line);
	free(l.ids);
	free(l.names);
	return c;
}

void
tally_catalog_free(struct tally_catalog *c)
{
	if (c == NULL)
		return;
	free(c->dense);
	free(c->sparse_id); /* sparse_kind shares its allocation */
	free(c->by_name);
	free(c->entry);
	free(c);
}

uint32_t
tally_catalog_count(const struct tally_catalog *c)
{
	return c != NULL ? c->n : 0;
}

const struct tally_catalog_entry *
tally_catalog_at(const struct tally_catalog *c, uint32_t i)
{
	return c != NULL && i < c->n ? &c->entry[i] : NULL;
}

const struct tally_catalog_entry *
tally_catalog_find(const struct tally_catalog *c, uint32_t id)
{
	uint32_t lo = 0, hi;

	if (c == NULL || tally_catalog_kind(c, id) == TALLY_KIND_NONE)
		return NULL;
	hi = c->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (c->entry[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return &c->entry[lo];
}

const struct tally_catalog_entry *
tally_catalog_find_name(const struct tally_catalog *c, const char *name)
{
	uint32_t i;

	if (c == NULL)
		return NULL;
	i = *name_slot(c->by_name, c->name_mask, c->entry, name);
	return i != 0 ? &c->entry[i - 1] : NULL;
}

void
tally_catalog_kinds(const struct tally_catalog *c, uint8_t *kinds, uint32_t n)
{
	uint32_t i;

	memset(kinds, 0, n);
	for (i = 0; c != NULL && i < c->n && c->entry[i].id < n; i++)
		kinds[c->entry[i].id] = c->entry[i].kind;
}
