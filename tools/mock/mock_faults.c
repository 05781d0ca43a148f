#include "mock_faults.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "strbuf.h"

/* a JSON number holds integers exactly up to here */
#define SEED_JSON_MAX 9007199254740992.0

enum knob_type {
    KNOB_PROBABILITY,
    KNOB_UINT,
    KNOB_STATUS,
    KNOB_BOOL,
    KNOB_SEED,
};

struct knob {
    const char *name; /* the JSON key; the flag spells it with '-' */
    enum knob_type type;
    size_t offset; /* into struct mock_fault_settings */
    double min, max;
};

#define PROBABILITY_KNOB(key, fault)                                                               \
    {                                                                                              \
        key, KNOB_PROBABILITY, offsetof(struct mock_fault_settings, probability[fault]), 0, 1      \
    }

static const struct knob knobs[] = {
    PROBABILITY_KNOB("error_500", MOCK_FAULT_ERROR_500),
    PROBABILITY_KNOB("error_502", MOCK_FAULT_ERROR_502),
    PROBABILITY_KNOB("error_503", MOCK_FAULT_ERROR_503),
    PROBABILITY_KNOB("error_504", MOCK_FAULT_ERROR_504),
    PROBABILITY_KNOB("rate_limit", MOCK_FAULT_RATE_LIMIT),
    PROBABILITY_KNOB("hang", MOCK_FAULT_HANG),
    PROBABILITY_KNOB("reset", MOCK_FAULT_RESET),
    PROBABILITY_KNOB("lost_answer", MOCK_FAULT_LOST_ANSWER),
    {"latency_ms", KNOB_UINT, offsetof(struct mock_fault_settings, latency_ms), 0, 600000},
    {"latency_jitter_ms", KNOB_UINT, offsetof(struct mock_fault_settings, latency_jitter_ms), 0,
     600000},
    {"retry_after", KNOB_UINT, offsetof(struct mock_fault_settings, retry_after_s), 0, 86400},
    {"retry_after_date", KNOB_BOOL, offsetof(struct mock_fault_settings, retry_after_date), 0, 1},
    {"fail_first", KNOB_UINT, offsetof(struct mock_fault_settings, fail_first), 0, 1000000000},
    {"fail_first_status", KNOB_STATUS, offsetof(struct mock_fault_settings, fail_first_status), 400,
     599},
    {"auth_status", KNOB_STATUS, offsetof(struct mock_fault_settings, auth_status), 400, 401},
    {"seed", KNOB_SEED, offsetof(struct mock_fault_settings, seed), 0, SEED_JSON_MAX},
};

static const char *const fault_names[MOCK_FAULT_COUNT] = {
    [MOCK_FAULT_NONE] = "none",
    [MOCK_FAULT_FAIL_FIRST] = "fail_first",
    [MOCK_FAULT_ERROR_500] = "error_500",
    [MOCK_FAULT_ERROR_502] = "error_502",
    [MOCK_FAULT_ERROR_503] = "error_503",
    [MOCK_FAULT_ERROR_504] = "error_504",
    [MOCK_FAULT_RATE_LIMIT] = "rate_limit",
    [MOCK_FAULT_HANG] = "hang",
    [MOCK_FAULT_RESET] = "reset",
    [MOCK_FAULT_LOST_ANSWER] = "lost_answer",
};

struct mock_faults {
    struct mock_fault_settings settings;
    struct mock_fault_settings defaults;
    unsigned fail_first_left;
    uint64_t fault_state;  /* PRNG stream of the fault draws */
    uint64_t jitter_state; /* its own stream, so latency settings never shift the fault draws */
};

/* splitmix64: tiny, fast and statistically sound for test traffic */
static uint64_t prng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) with 53 random bits */
static double prng_unit(uint64_t *state)
{
    return (double)(prng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

void mock_faults_restart(struct mock_faults *faults)
{
    faults->fault_state = faults->settings.seed;
    faults->jitter_state = faults->settings.seed ^ 0x6a09e667f3bcc909ULL;
    faults->fail_first_left = faults->settings.fail_first;
}

struct mock_faults *mock_faults_create(void)
{
    struct mock_faults *faults = calloc(1, sizeof(*faults));

    if (faults == NULL)
        return NULL;
    faults->settings.retry_after_s = 1;
    faults->settings.fail_first_status = 500;
    faults->settings.auth_status = 400;
    faults->settings.seed = 1;
    faults->defaults = faults->settings;
    mock_faults_restart(faults);
    return faults;
}

void mock_faults_free(struct mock_faults *faults)
{
    free(faults);
}

static const struct knob *knob_find(const char *name)
{
    char key[32];
    size_t len = strlen(name);

    if (len >= sizeof(key))
        return NULL;
    for (size_t i = 0; i <= len; i++)
        key[i] = name[i] == '-' ? '_' : name[i];
    for (size_t i = 0; i < DM_ARRAY_LEN(knobs); i++) {
        if (strcmp(knobs[i].name, key) == 0)
            return &knobs[i];
    }
    return NULL;
}

static bool knob_store(const struct knob *k, double value, struct mock_fault_settings *s, char *err,
                       size_t errlen)
{
    char *field = (char *)s + k->offset;

    if (!(value >= k->min && value <= k->max)) {
        snprintf(err, errlen, "%s must be between %.15g and %.15g", k->name, k->min, k->max);
        return false;
    }
    if (k->type != KNOB_PROBABILITY && value != (double)(uint64_t)value) {
        snprintf(err, errlen, "%s must be a whole number", k->name);
        return false;
    }
    switch (k->type) {
    case KNOB_PROBABILITY:
        *(double *)(void *)field = value;
        break;
    case KNOB_UINT:
        *(unsigned *)(void *)field = (unsigned)value;
        break;
    case KNOB_STATUS:
        *(int *)(void *)field = (int)value;
        break;
    case KNOB_BOOL:
        *(bool *)field = value != 0;
        break;
    case KNOB_SEED:
        *(uint64_t *)(void *)field = (uint64_t)value;
        break;
    }
    return true;
}

static bool parse_bool_text(const char *text, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};

    for (size_t i = 0; i < DM_ARRAY_LEN(yes); i++) {
        if (strcmp(text, yes[i]) == 0 || strcmp(text, no[i]) == 0) {
            *out = strcmp(text, yes[i]) == 0;
            return true;
        }
    }
    return false;
}

static bool parse_number_text(const char *text, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(text, &end);
    return end != text && *end == '\0' && errno == 0;
}

/* latency takes N or N:JITTER */
static bool set_latency_text(const char *value, struct mock_fault_settings *s, char *err,
                             size_t errlen)
{
    char base[32];
    const char *colon = strchr(value, ':');
    size_t len = colon != NULL ? (size_t)(colon - value) : strlen(value);
    double ms;

    if (len >= sizeof(base)) {
        snprintf(err, errlen, "latency_ms: expected N or N:JITTER");
        return false;
    }
    memcpy(base, value, len);
    base[len] = '\0';
    if (!parse_number_text(base, &ms)) {
        snprintf(err, errlen, "latency_ms: expected N or N:JITTER");
        return false;
    }
    if (!knob_store(knob_find("latency_ms"), ms, s, err, errlen))
        return false;
    if (colon == NULL)
        return true;
    if (!parse_number_text(colon + 1, &ms)) {
        snprintf(err, errlen, "latency_ms: expected N or N:JITTER");
        return false;
    }
    return knob_store(knob_find("latency_jitter_ms"), ms, s, err, errlen);
}

static bool set_text(const struct knob *k, const char *value, struct mock_fault_settings *s,
                     char *err, size_t errlen)
{
    double number;
    bool flag;

    if (strcmp(k->name, "latency_ms") == 0)
        return set_latency_text(value, s, err, errlen);
    if (k->type == KNOB_BOOL) {
        if (!parse_bool_text(value, &flag)) {
            snprintf(err, errlen, "%s must be true or false", k->name);
            return false;
        }
        return knob_store(k, flag ? 1 : 0, s, err, errlen);
    }
    if (k->type == KNOB_SEED) {
        char *end;
        unsigned long long seed;

        errno = 0;
        seed = strtoull(value, &end, 0);
        if (end == value || *end != '\0' || errno != 0 || value[0] == '-') {
            snprintf(err, errlen, "seed must be a whole number");
            return false;
        }
        s->seed = seed;
        return true;
    }
    if (!parse_number_text(value, &number)) {
        snprintf(err, errlen, "%s must be a number", k->name);
        return false;
    }
    return knob_store(k, number, s, err, errlen);
}

static bool settings_check(const struct mock_fault_settings *s, char *err, size_t errlen)
{
    double sum = 0;

    for (int f = MOCK_FAULT_ERROR_500; f < MOCK_FAULT_COUNT; f++)
        sum += s->probability[f];
    /* the faults are disjoint slices of one draw */
    if (sum > 1.0 + 1e-9) {
        snprintf(err, errlen, "fault probabilities add up to %.6g, more than 1", sum);
        return false;
    }
    return true;
}

/* Setting the seed restarts the draws; setting fail-first re-arms it for the next requests. */
static void settings_commit(struct mock_faults *faults, const struct mock_fault_settings *s,
                            bool reseed, bool rearm)
{
    faults->settings = *s;
    if (reseed) {
        faults->fault_state = s->seed;
        faults->jitter_state = s->seed ^ 0x6a09e667f3bcc909ULL;
    }
    if (rearm)
        faults->fail_first_left = s->fail_first;
}

bool mock_faults_set(struct mock_faults *faults, const char *name, const char *value, char *err,
                     size_t errlen)
{
    const struct knob *k = knob_find(name);
    struct mock_fault_settings s = faults->settings;

    if (k == NULL) {
        snprintf(err, errlen, "unknown fault knob '%s'", name);
        return false;
    }
    if (!set_text(k, value, &s, err, errlen) || !settings_check(&s, err, errlen))
        return false;
    settings_commit(faults, &s, k->type == KNOB_SEED, strcmp(k->name, "fail_first") == 0);
    return true;
}

bool mock_faults_update(struct mock_faults *faults, const cJSON *object, char *err, size_t errlen)
{
    struct mock_fault_settings s = faults->settings;
    const cJSON *item;
    bool reseed = false, rearm = false;

    if (!cJSON_IsObject(object)) {
        snprintf(err, errlen, "expected a JSON object of fault knobs");
        return false;
    }
    cJSON_ArrayForEach(item, object)
    {
        const struct knob *k = knob_find(item->string);
        double value;

        if (k == NULL) {
            snprintf(err, errlen, "unknown fault knob '%.64s'", item->string);
            return false;
        }
        if (k->type == KNOB_BOOL ? !cJSON_IsBool(item) : !cJSON_IsNumber(item)) {
            snprintf(err, errlen, "%s must be a %s", k->name,
                     k->type == KNOB_BOOL ? "boolean" : "number");
            return false;
        }
        value = k->type == KNOB_BOOL ? (cJSON_IsTrue(item) ? 1 : 0) : item->valuedouble;
        if (!knob_store(k, value, &s, err, errlen))
            return false;
        reseed |= k->type == KNOB_SEED;
        rearm |= strcmp(k->name, "fail_first") == 0;
    }
    if (!settings_check(&s, err, errlen))
        return false;
    settings_commit(faults, &s, reseed, rearm);
    return true;
}

void mock_faults_save_defaults(struct mock_faults *faults)
{
    faults->defaults = faults->settings;
}

void mock_faults_restore_defaults(struct mock_faults *faults)
{
    faults->settings = faults->defaults;
    mock_faults_restart(faults);
}

const struct mock_fault_settings *mock_faults_settings(const struct mock_faults *faults)
{
    return &faults->settings;
}

enum mock_fault mock_faults_draw(struct mock_faults *faults)
{
    double u = prng_unit(&faults->fault_state);
    double edge = 0;

    if (faults->fail_first_left > 0) {
        faults->fail_first_left--;
        return MOCK_FAULT_FAIL_FIRST;
    }
    for (int f = MOCK_FAULT_ERROR_500; f < MOCK_FAULT_COUNT; f++) {
        edge += faults->settings.probability[f];
        if (u < edge)
            return (enum mock_fault)f;
    }
    return MOCK_FAULT_NONE;
}

unsigned mock_faults_latency_ms(struct mock_faults *faults)
{
    unsigned base = faults->settings.latency_ms;
    unsigned jitter = faults->settings.latency_jitter_ms;
    uint64_t offset;

    if (jitter == 0)
        return base;
    offset = prng_next(&faults->jitter_state) % (2 * (uint64_t)jitter + 1);
    /* base - jitter + offset, floored at zero */
    return base + offset < jitter ? 0 : (unsigned)(base + offset - jitter);
}

void mock_faults_to_json(const struct mock_faults *faults, struct strbuf *out)
{
    const struct mock_fault_settings *s = &faults->settings;

    strbuf_puts(out, "{");
    for (size_t i = 0; i < DM_ARRAY_LEN(knobs); i++) {
        const char *field = (const char *)s + knobs[i].offset;

        strbuf_printf(out, "%s\"%s\":", i ? "," : "", knobs[i].name);
        switch (knobs[i].type) {
        case KNOB_PROBABILITY:
            strbuf_printf(out, "%.15g", *(const double *)(const void *)field);
            break;
        case KNOB_UINT:
            strbuf_printf(out, "%u", *(const unsigned *)(const void *)field);
            break;
        case KNOB_STATUS:
            strbuf_printf(out, "%d", *(const int *)(const void *)field);
            break;
        case KNOB_BOOL:
            strbuf_puts(out, *(const bool *)field ? "true" : "false");
            break;
        case KNOB_SEED:
            strbuf_printf(out, "%llu", (unsigned long long)*(const uint64_t *)(const void *)field);
            break;
        }
    }
    strbuf_puts(out, "}");
}

const char *mock_fault_name(enum mock_fault fault)
{
    return fault_names[fault];
}
