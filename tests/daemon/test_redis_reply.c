/* redis_reply: hiredis' reader building its replies on the loop heap: every reply type, nesting,
   replies fed a byte at a time, and a reply cut short by a protocol error (ASan checks the frees). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <hiredis/hiredis.h>

#include "loop_heap.h"
#include "redis_reply.h"

static int setup(void **state)
{
    redisReader *r = redisReaderCreate();

    assert_non_null(r);
    assert_true(loop_heap_init());
    redis_reply_attach(r);
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    redisReaderFree(*state);
    loop_heap_cleanup();
    return 0;
}

static redisReply *read_reply(redisReader *r, const char *wire, size_t len, size_t step)
{
    void *reply = NULL;

    for (size_t i = 0; i < len; i += step) {
        size_t n = len - i < step ? len - i : step;

        assert_int_equal(redisReaderFeed(r, wire + i, n), REDIS_OK);
        assert_int_equal(redisReaderGetReply(r, &reply), REDIS_OK);
        if (i + n < len)
            assert_null(reply);
    }
    assert_non_null(reply);
    return reply;
}

static void assert_string_reply(const redisReply *r, int type, const char *s, size_t len)
{
    assert_int_equal(r->type, type);
    assert_int_equal(r->len, len);
    assert_memory_equal(r->str, s, len);
    assert_int_equal(r->str[len], '\0');
}

/* what XREADGROUP answers, with every other type inside */
static const char nested[] = "*3\r\n"
                             "*2\r\n$5\r\n1-0\0x\r\n*4\r\n$7\r\npayload\r\n$3\r\n{ }\r\n$0\r\n\r\n$-1\r\n"
                             ":-42\r\n"
                             "*5\r\n+OK\r\n-ERR bad\r\n*0\r\n*-1\r\n:9223372036854775807\r\n";

static void check_nested(const redisReply *top)
{
    const redisReply *entry, *fields, *mixed;

    assert_int_equal(top->type, REDIS_REPLY_ARRAY);
    assert_int_equal(top->elements, 3);
    entry = top->element[0];
    assert_int_equal(entry->elements, 2);
    assert_string_reply(entry->element[0], REDIS_REPLY_STRING, "1-0\0x", 5);
    fields = entry->element[1];
    assert_int_equal(fields->elements, 4);
    assert_string_reply(fields->element[0], REDIS_REPLY_STRING, "payload", 7);
    assert_string_reply(fields->element[1], REDIS_REPLY_STRING, "{ }", 3);
    assert_string_reply(fields->element[2], REDIS_REPLY_STRING, "", 0);
    assert_int_equal(fields->element[3]->type, REDIS_REPLY_NIL);
    assert_int_equal(top->element[1]->type, REDIS_REPLY_INTEGER);
    assert_int_equal(top->element[1]->integer, -42);
    mixed = top->element[2];
    assert_int_equal(mixed->elements, 5);
    assert_string_reply(mixed->element[0], REDIS_REPLY_STATUS, "OK", 2);
    assert_string_reply(mixed->element[1], REDIS_REPLY_ERROR, "ERR bad", 7);
    assert_int_equal(mixed->element[2]->type, REDIS_REPLY_ARRAY);
    assert_int_equal(mixed->element[2]->elements, 0);
    assert_null(mixed->element[2]->element);
    assert_int_equal(mixed->element[3]->type, REDIS_REPLY_NIL);
    assert_int_equal(mixed->element[4]->integer, INT64_MAX);
}

static void test_every_type_nested(void **state)
{
    redisReader *r = *state;

    for (size_t step = 1; step <= sizeof(nested); step *= 3) {
        redisReply *top = read_reply(r, nested, sizeof(nested) - 1, step);

        check_nested(top);
        r->fn->freeObject(top);
    }
}

/* a large string and many replies in a row reuse the heap's blocks without mixing contents */
static void test_many_replies(void **state)
{
    redisReader *r = *state;
    static char big[6000];
    char wire[6100];
    int n;

    memset(big, 'b', sizeof(big));
    n = snprintf(wire, sizeof(wire), "$%zu\r\n", sizeof(big));
    memcpy(wire + n, big, sizeof(big));
    memcpy(wire + n + sizeof(big), "\r\n", 2);
    for (int i = 0; i < 50; i++) {
        redisReply *top = read_reply(r, nested, sizeof(nested) - 1, sizeof(nested));
        redisReply *s = read_reply(r, wire, (size_t)n + sizeof(big) + 2, 4096);

        check_nested(top);
        assert_string_reply(s, REDIS_REPLY_STRING, big, sizeof(big));
        r->fn->freeObject(top);
        r->fn->freeObject(s);
    }
}

/* a protocol error halfway through an array: the partial reply is freed with the reader */
static void test_cut_short(void **state)
{
    redisReader *r = *state;
    static const char wire[] = "*3\r\n$3\r\nabc\r\n*2\r\n:1\r\n?bogus\r\n";
    void *reply = NULL;

    assert_int_equal(redisReaderFeed(r, wire, sizeof(wire) - 1), REDIS_OK);
    assert_int_equal(redisReaderGetReply(r, &reply), REDIS_ERR);
    assert_null(reply);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_type_nested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_short, setup, teardown),
    };

    return cmocka_run_group_tests_name("redis_reply", tests, NULL, NULL);
}
