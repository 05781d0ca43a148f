#include "retry_after.h"

#include <string.h>

#include "compiler.h"

#define MS_PER_DAY (INT64_C(86400) * 1000)
/* any valid value is far shorter; longer ones are refused unread */
#define VALUE_MAX_LEN 256

/* the unparsed rest of the header value */
struct cursor {
    const char *p;
    const char *end;
};

static const char *const short_days[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const long_days[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                        "Friday", "Saturday", "Sunday"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* a parsed HTTP-date, month 1-12 */
struct civil_time {
    int64_t year;
    int month, day, hour, minute, second;
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool take_char(struct cursor *c, char ch)
{
    if (c->p == c->end || *c->p != ch)
        return false;
    c->p++;
    return true;
}

static bool take_string(struct cursor *c, const char *s)
{
    size_t len = strlen(s);

    if ((size_t)(c->end - c->p) < len || memcmp(c->p, s, len) != 0)
        return false;
    c->p += len;
    return true;
}

/* exactly n digits */
static bool take_digits(struct cursor *c, int n, int *out)
{
    int v = 0;

    if (c->end - c->p < n)
        return false;
    for (int i = 0; i < n; i++) {
        if (!is_digit(c->p[i]))
            return false;
        v = v * 10 + (c->p[i] - '0');
    }
    c->p += n;
    *out = v;
    return true;
}

/* one of words (case-sensitive, as RFC 9110 says); *index (when not NULL) is its position */
static bool take_word(struct cursor *c, const char *const *words, size_t count, int *index)
{
    for (size_t i = 0; i < count; i++) {
        if (take_string(c, words[i])) {
            if (index)
                *index = (int)i;
            return true;
        }
    }
    return false;
}

static bool take_month(struct cursor *c, int *month)
{
    int i;

    if (!take_word(c, months, DM_ARRAY_LEN(months), &i))
        return false;
    *month = i + 1;
    return true;
}

/* time-of-day = hour ":" minute ":" second; 60 is a leap second */
static bool take_time(struct cursor *c, struct civil_time *t)
{
    return take_digits(c, 2, &t->hour) && take_char(c, ':') && take_digits(c, 2, &t->minute) &&
           take_char(c, ':') && take_digits(c, 2, &t->second) && t->hour <= 23 && t->minute <= 59 &&
           t->second <= 60;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" */
static bool parse_imf_fixdate(struct cursor c, struct civil_time *t)
{
    int year;

    if (!(take_word(&c, short_days, DM_ARRAY_LEN(short_days), NULL) && take_string(&c, ", ") &&
          take_digits(&c, 2, &t->day) && take_char(&c, ' ') && take_month(&c, &t->month) &&
          take_char(&c, ' ') && take_digits(&c, 4, &year) && take_char(&c, ' ') &&
          take_time(&c, t) && take_string(&c, " GMT") && c.p == c.end))
        return false;
    t->year = year;
    return true;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* the year of a day count since 1970-01-01 (proleptic Gregorian, 400-year eras) */
static int64_t year_of_days(int64_t days)
{
    int64_t z = days + 719468; /* days since 0000-03-01 */
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153; /* 0 = March ... 11 = February */

    return yoe + era * 400 + (mp >= 10);
}

/* "Sunday, 06-Nov-94 08:49:37 GMT"; the century comes from now */
static bool parse_rfc850(struct cursor c, int64_t now_ms, struct civil_time *t)
{
    int yy;
    int64_t now_year, year;

    if (!(take_word(&c, long_days, DM_ARRAY_LEN(long_days), NULL) && take_string(&c, ", ") &&
          take_digits(&c, 2, &t->day) && take_char(&c, '-') && take_month(&c, &t->month) &&
          take_char(&c, '-') && take_digits(&c, 2, &yy) && take_char(&c, ' ') && take_time(&c, t) &&
          take_string(&c, " GMT") && c.p == c.end))
        return false;
    now_year = year_of_days(floor_div(now_ms, MS_PER_DAY));
    /* a clock beyond four-digit years is broken; refusing keeps the ms arithmetic in range */
    if (now_year < 0 || now_year > 9999)
        return false;
    year = floor_div(now_year, 100) * 100 + yy;
    if (year > now_year + 50)
        year -= 100;
    else if (year <= now_year - 50)
        year += 100;
    t->year = year;
    return true;
}

/* "Sun Nov  6 08:49:37 1994" */
static bool parse_asctime(struct cursor c, struct civil_time *t)
{
    int year;

    if (!(take_word(&c, short_days, DM_ARRAY_LEN(short_days), NULL) && take_char(&c, ' ') &&
          take_month(&c, &t->month) && take_char(&c, ' ')))
        return false;
    if (take_char(&c, ' ')) {
        if (!take_digits(&c, 1, &t->day))
            return false;
    } else if (!take_digits(&c, 2, &t->day)) {
        return false;
    }
    if (!(take_char(&c, ' ') && take_time(&c, t) && take_char(&c, ' ') &&
          take_digits(&c, 4, &year) && c.p == c.end))
        return false;
    t->year = year;
    return true;
}

static bool is_leap_year(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool date_valid(const struct civil_time *t)
{
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int last;

    if (t->month < 1 || t->month > 12)
        return false;
    last = month_days[t->month - 1] + (t->month == 2 && is_leap_year(t->year));
    return t->day >= 1 && t->day <= last;
}

/* days since 1970-01-01, counting years from March so the leap day ends the year */
static int64_t days_from_civil(int64_t year, int month, int day)
{
    int64_t y = year - (month <= 2);
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}

static int64_t civil_to_ms(const struct civil_time *t)
{
    int64_t days = days_from_civil(t->year, t->month, t->day);

    return days * MS_PER_DAY + ((int64_t)t->hour * 3600 + t->minute * 60 + t->second) * 1000;
}

static bool parse_delta_seconds(struct cursor c, int64_t *delay_ms)
{
    int64_t seconds = 0;

    if (c.p == c.end)
        return false;
    for (; c.p < c.end; c.p++) {
        if (!is_digit(*c.p))
            return false;
        /* stop growing past the cap so any number of digits is safe */
        if (seconds <= RETRY_AFTER_MAX_MS / 1000)
            seconds = seconds * 10 + (*c.p - '0');
    }
    *delay_ms = seconds * 1000 < RETRY_AFTER_MAX_MS ? seconds * 1000 : RETRY_AFTER_MAX_MS;
    return true;
}

bool retry_after_parse(const char *value, int64_t now_ms, int64_t *delay_ms)
{
    size_t len = strnlen(value, VALUE_MAX_LEN + 1);
    struct cursor c = {value, value + len};
    struct civil_time t;
    int64_t date_ms;

    if (len > VALUE_MAX_LEN)
        return false;
    while (c.p < c.end && is_space(*c.p))
        c.p++;
    while (c.end > c.p && is_space(c.end[-1]))
        c.end--;
    if (c.p < c.end && is_digit(*c.p))
        return parse_delta_seconds(c, delay_ms);
    if (!(parse_imf_fixdate(c, &t) || parse_rfc850(c, now_ms, &t) || parse_asctime(c, &t)) ||
        !date_valid(&t))
        return false;
    date_ms = civil_to_ms(&t);
    if (date_ms <= now_ms)
        *delay_ms = 0;
    else if (now_ms < date_ms - RETRY_AFTER_MAX_MS)
        *delay_ms = RETRY_AFTER_MAX_MS;
    else
        *delay_ms = date_ms - now_ms;
    return true;
}
