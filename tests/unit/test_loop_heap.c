/* loop_heap: the owning thread reuses blocks, another thread never touches the pool, blocks cross
   threads and outlive the heap, init and cleanup are counted. ASan checks every block is freed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "loop_heap.h"

/* the owning thread gets a freed block back for the next request of its size */
static void test_owner_reuses(void **state)
{
    void *a, *b;

    (void)state;
    assert_true(loop_heap_init());
    a = loop_heap_malloc(100);
    assert_non_null(a);
    loop_heap_free(a);
    b = loop_heap_malloc(100);
    assert_ptr_equal(b, a);
    loop_heap_free(b);
    loop_heap_cleanup();
}

struct other {
    void *from_owner; /* freed by the other thread */
    char *mine;       /* allocated there, freed here */
    char *grown;      /* grown there from a block of the owner's */
};

/* what libcurl's resolver threads do: allocate, free and grow outside the pool */
static void *other_thread(void *arg)
{
    struct other *o = arg;

    loop_heap_free(o->from_owner);
    o->mine = loop_heap_strdup("from the resolver");
    o->grown = loop_heap_realloc(o->grown, 3000);
    if (o->grown != NULL)
        memset(o->grown + 4, 'x', 2996);
    return NULL;
}

static void test_other_thread(void **state)
{
    struct other o = {0};
    pthread_t t;

    (void)state;
    assert_true(loop_heap_init());
    o.from_owner = loop_heap_malloc(64);
    o.grown = loop_heap_strdup("abc");
    assert_non_null(o.from_owner);
    assert_non_null(o.grown);
    assert_int_equal(pthread_create(&t, NULL, other_thread, &o), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_string_equal(o.mine, "from the resolver");
    assert_non_null(o.grown);
    assert_string_equal(o.grown, "abc");
    assert_int_equal(o.grown[2999], 'x');
    /* blocks of another thread's malloc are taken into the owner's pool like its own */
    loop_heap_free(o.grown);
    assert_ptr_equal(loop_heap_malloc(3000), o.grown);
    loop_heap_free(o.grown);
    loop_heap_free(o.mine);
    loop_heap_cleanup();
}

/* counted init; blocks allocated under the heap are freed after it is gone */
static void test_counted_and_outliving(void **state)
{
    char *s;
    unsigned char *z;

    (void)state;
    assert_true(loop_heap_init());
    assert_true(loop_heap_init());
    s = loop_heap_strdup("kept");
    loop_heap_cleanup();
    /* still one user: the pool still serves, and calloc zeroes a reused block */
    z = loop_heap_malloc(300);
    assert_non_null(z);
    memset(z, 0xff, 300);
    loop_heap_free(z);
    assert_ptr_equal(loop_heap_calloc(10, 30), z);
    for (size_t i = 0; i < 300; i++)
        assert_int_equal(z[i], 0);
    z = loop_heap_realloc(z, 5000);
    assert_non_null(z);
    loop_heap_cleanup();
    assert_string_equal(s, "kept");
    loop_heap_free(s);
    loop_heap_free(z);
    /* without init every call is plain malloc */
    s = loop_heap_malloc(10);
    assert_non_null(s);
    loop_heap_free(s);
    assert_null(loop_heap_calloc(SIZE_MAX / 2, 3));
    loop_heap_cleanup(); /* one too many is ignored */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_owner_reuses),
        cmocka_unit_test(test_other_thread),
        cmocka_unit_test(test_counted_and_outliving),
    };

    return cmocka_run_group_tests_name("loop_heap", tests, NULL, NULL);
}
