/* SPDX-License-Identifier: BSD-3-Clause */
/* statsd / DogStatsD line grammar. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tally_statsd.h"

static const char *const reason_names[] = {
#define TALLY_STATSD_REASON_NAME(sym, name, help) name,
	TALLY_FOREACH_STATSD_REASON(TALLY_STATSD_REASON_NAME)
#undef TALLY_STATSD_REASON_NAME
};

const char *
tally_statsd_reason_name(unsigned int reason)
{
	return reason < TALLY_STATSD_REASON_MAX ? reason_names[reason] : NULL;
}

static const char *const reason_help[] = {
#define TALLY_STATSD_REASON_HELP(sym, name, help) help,
	TALLY_FOREACH_STATSD_REASON(TALLY_STATSD_REASON_HELP)
#undef TALLY_STATSD_REASON_HELP
};

const char *
tally_statsd_reason_help(unsigned int reason)
{
	return reason < TALLY_STATSD_REASON_MAX ? reason_help[reason] : NULL;
}

int
tally_statsd_text_ok(const char *p, uint32_t len)
{
	const uint8_t *s = (const uint8_t *)p, *end = s + len;

	while (s < end) {
		uint8_t c = *s;
		uint32_t need, cp, min;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return 0;
			s++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			need = 1;
			cp = c & 0x1f;
			min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			need = 2;
			cp = c & 0x0f;
			min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			need = 3;
			cp = c & 0x07;
			min = 0x10000;
		} else {
			return 0;
		}
		if ((uint32_t)(end - s) <= need)
			return 0;
		for (uint32_t i = 1; i <= need; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i] & 0x3f);
		}
		/* overlong forms, UTF-16 surrogates and past U+10FFFF are not UTF-8 */
		if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return 0;
		s += need + 1;
	}
	return 1;
}

/* Exact powers of ten a double holds (the fast path's scale). */
static const double pow10_exact[] = {1e0,  1e1,	 1e2,  1e3,  1e4,  1e5,	 1e6,  1e7,
				     1e8,  1e9,	 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
				     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

int
tally_statsd_number(const char *p, uint32_t len, double *v)
{
	const char *s = p, *end = p + len;
	uint64_t mant = 0;
	int digits = 0, frac = 0, neg = 0, exp = 0, eneg = 0, edigits = 0, any = 0;
	char buf[64];
	double r;

	if (len == 0)
		return -1;
	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	/* digits, then a fraction: both optional, not both absent */
	for (; s < end && *s >= '0' && *s <= '9'; s++, any = 1) {
		if (mant == 0 && *s == '0') /* leading zeros are not significant */
			continue;
		if (digits < 19)
			mant = mant * 10 + (uint64_t)(*s - '0');
		else
			frac--; /* a digit beyond those kept: the scale grows */
		digits++;
	}
	if (s < end && *s == '.') {
		s++;
		for (; s < end && *s >= '0' && *s <= '9'; s++, any = 1) {
			if (mant == 0 && *s == '0') {
				frac++;
				continue;
			}
			if (digits < 19) {
				mant = mant * 10 + (uint64_t)(*s - '0');
				frac++;
			}
			digits++;
		}
	}
	if (!any)
		return -1;
	if (s < end && (*s == 'e' || *s == 'E')) {
		s++;
		if (s < end && (*s == '+' || *s == '-'))
			eneg = *s++ == '-';
		for (; s < end && *s >= '0' && *s <= '9'; s++) {
			if (exp < 100000)
				exp = exp * 10 + (*s - '0');
			edigits++;
		}
		if (edigits == 0)
			return -1;
	}
	if (s != end)
		return -1;
	exp = (eneg ? -exp : exp) - frac;
	/* Clinger's fast path: an exact mantissa times or over an exact power of ten */
	if (digits <= 15 && mant < (1ull << 53) && exp >= -22 && exp <= 22) {
		r = (double)mant;
		r = exp < 0 ? r / pow10_exact[-exp] : r * pow10_exact[exp];
		*v = neg ? -r : r;
		return 0;
	}
	if (mant == 0) {
		*v = neg ? -0.0 : 0.0;
		return 0;
	}
	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, p, len);
	buf[len] = '\0';
	r = strtod(buf, NULL);
	if (!isfinite(r))
		return -1; /* 1e309: out of a double's range */
	*v = r;
	return 0;
}

/* The type word of a line. */
static int
parse_type(const char *p, uint32_t len)
{
	if (len == 1) {
		switch (p[0]) {
		case 'c':
			return TALLY_STATSD_COUNTER;
		case 'g':
			return TALLY_STATSD_GAUGE;
		case 'h':
			return TALLY_STATSD_HISTOGRAM;
		case 'd':
			return TALLY_STATSD_DISTRIBUTION;
		case 's':
			return TALLY_STATSD_SET;
		}
	} else if (len == 2 && p[0] == 'm' && p[1] == 's') {
		return TALLY_STATSD_TIMER;
	}
	return 0;
}

static const char *
find(const char *p, const char *end, char c)
{
	const char *q = memchr(p, c, (size_t)(end - p));

	return q != NULL ? q : end;
}

/* Whether [p, end) is digits alone (cheap: a name's first byte is rarely a digit). */
static int
all_digits(const char *p, const char *end)
{
	for (; p < end; p++)
		if (*p < '0' || *p > '9')
			return 0;
	return 1;
}

#define REFUSE(r) return 1 + TALLY_STATSD_##r

/* The tags of a `#a,b:c` section (without the '#'). */
static int
parse_tags(const char *p, const char *end, unsigned int max_tags, struct tally_statsd_line *out)
{
	while (p <= end) {
		const char *c = find(p, end, ',');
		uint32_t len = (uint32_t)(c - p);

		if (len == 0)
			REFUSE(BAD_TAG);
		if (len > TALLY_STATSD_TAG_MAX)
			REFUSE(TOO_LONG);
		if (!tally_statsd_text_ok(p, len))
			REFUSE(BAD_TAG);
		if (out->ntags >= max_tags)
			REFUSE(TOO_MANY_TAGS);
		out->tags[out->ntags].p = p;
		out->tags[out->ntags].len = (uint16_t)len;
		out->ntags++;
		if (c == end)
			break;
		p = c + 1;
	}
	return 0;
}

/* The values between the name's ':' and the '|': a set's member, or numbers packed by ':'. */
static int
parse_values(const char *p, const char *end, struct tally_statsd_line *out)
{
	if (out->type == TALLY_STATSD_SET) {
		/* the member is everything up to the '|' (it may hold ':') */
		if (p == end || !tally_statsd_text_ok(p, (uint32_t)(end - p)))
			REFUSE(BAD_VALUE);
		if (end - p > TALLY_STATSD_NAME_MAX)
			REFUSE(TOO_LONG);
		out->member = p;
		out->member_len = (uint16_t)(end - p);
		return 0;
	}
	while (p <= end) {
		const char *c = find(p, end, ':');
		uint32_t len = (uint32_t)(c - p);
		int sign = len > 0 && (*p == '+' || *p == '-');

		if (out->nvalues >= TALLY_STATSD_VALUES_MAX)
			REFUSE(TOO_MANY_VALUES);
		if (out->type == TALLY_STATSD_GAUGE) {
			/* a sign makes every value of the line a delta; mixed lines are refused */
			if (out->nvalues > 0 && sign != out->delta)
				REFUSE(BAD_VALUE);
			out->delta = (uint8_t)sign;
		}
		/* "+-3", "--3": one sign at most */
		if (sign && len > 1 && (p[1] == '+' || p[1] == '-'))
			REFUSE(BAD_VALUE);
		if (tally_statsd_number(p, len, &out->values[out->nvalues]) != 0)
			REFUSE(BAD_VALUE);
		out->nvalues++;
		if (c == end)
			break;
		p = c + 1;
	}
	return 0;
}

int
tally_statsd_parse_line(const char *p, uint32_t len, unsigned int max_tags,
			struct tally_statsd_line *out)
{
	const char *end = p + len, *colon, *bar, *sec;
	int rc;

	if (len > 0 && p[len - 1] == '\r')
		end--;
	out->ntags = 0;
	out->nvalues = 0;
	out->delta = 0;
	out->rate = 1;
	out->ts_s = 0;
	out->member = NULL;
	out->member_len = 0;
	out->container = NULL;
	out->container_len = 0;
	if (max_tags > TALLY_STATSD_TAGS_MAX)
		max_tags = TALLY_STATSD_TAGS_MAX;
	/* DogStatsD events (_e{...}) and service checks (_sc|...) are not metrics */
	if ((end - p >= 3 && memcmp(p, "_e{", 3) == 0) || (end - p >= 4 && memcmp(p, "_sc|", 4) == 0))
		REFUSE(EVENT);
	bar = find(p, end, '|');
	colon = find(p, bar, ':');
	if (colon == bar)
		REFUSE(NO_COLON);
	if (colon == p)
		REFUSE(EMPTY_NAME);
	if (colon - p > TALLY_STATSD_NAME_MAX)
		REFUSE(TOO_LONG);
	/* digits alone name a series by its id in Redis fields: never a statsd name */
	if (!tally_statsd_text_ok(p, (uint32_t)(colon - p)) || all_digits(p, colon))
		REFUSE(BAD_NAME);
	out->name = p;
	out->name_len = (uint16_t)(colon - p);
	if (bar == end)
		REFUSE(NO_TYPE);
	sec = find(bar + 1, end, '|');
	out->type = (uint8_t)parse_type(bar + 1, (uint32_t)(sec - bar - 1));
	if (out->type == 0)
		REFUSE(UNKNOWN_TYPE);
	rc = parse_values(colon + 1, bar, out);
	if (rc != 0)
		return rc;
	/* the sections after the type */
	while (sec < end) {
		const char *s = sec + 1, *next = find(s, end, '|');
		uint32_t slen = (uint32_t)(next - s);

		if (slen == 0)
			REFUSE(BAD_FIELD);
		switch (s[0]) {
		case '@':
			if (tally_statsd_number(s + 1, slen - 1, &out->rate) != 0 || !(out->rate > 0) ||
			    out->rate > 1)
				REFUSE(BAD_RATE);
			break;
		case '#':
			rc = parse_tags(s + 1, next, max_tags, out);
			if (rc != 0)
				return rc;
			break;
		case 'T': {
			int64_t t = 0;
			uint32_t i;

			if (slen < 2 || slen > 12)
				REFUSE(BAD_TIMESTAMP);
			for (i = 1; i < slen; i++) {
				if (s[i] < '0' || s[i] > '9')
					REFUSE(BAD_TIMESTAMP);
				t = t * 10 + (s[i] - '0');
			}
			out->ts_s = t;
			break;
		}
		case 'c':
			if (slen >= 2 && s[1] == ':') {
				out->container = s + 2;
				out->container_len = (uint16_t)(slen - 2 > 0xffff ? 0xffff : slen - 2);
				break;
			}
			/* fall through */
		default: {
			/* DogStatsD's later fields (a word and ':') are skipped; anything else refused */
			uint32_t i = 0;

			while (i < slen && ((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
				i++;
			if (i == 0 || i >= slen || s[i] != ':')
				REFUSE(BAD_FIELD);
			break;
		}
		}
		sec = next;
	}
	return 0;
}
