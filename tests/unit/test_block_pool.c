/* block_pool: size classes, reuse, the cache limit, realloc across classes, and blocks crossing
   between a pool, no pool (another thread) and plain malloc/free. ASan in CI checks that every
   block is freed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "block_pool.h"

static void fill(unsigned char *p, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i);
}

static void assert_filled(const unsigned char *p, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(p[i], (unsigned char)(seed + i));
}

/* every size gets a 16-byte aligned block it can use whole, pooled or not */
static void test_sizes(void **state)
{
    static const size_t sizes[] = {0, 1, 15, 16, 17, 100, 1024, 1025, 4095, 4096, 4097, 70000};
    struct block_pool *pool = block_pool_create(1 << 20);

    (void)state;
    assert_non_null(pool);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *a = block_pool_alloc(pool, sizes[i]);
        unsigned char *b = block_pool_alloc(NULL, sizes[i]);

        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal((uintptr_t)a % 16, 0);
        assert_int_equal((uintptr_t)b % 16, 0);
        fill(a, sizes[i], 1);
        fill(b, sizes[i], 2);
        assert_filled(a, sizes[i], 1);
        block_pool_release(pool, a);
        block_pool_release(pool, b);
    }
    block_pool_release(pool, NULL);
    block_pool_free(pool);
    block_pool_free(NULL);
}

/* a freed block is the next one handed out for its class (40 bytes here); another never is */
static void test_reuse_by_class(void **state)
{
    struct block_pool *pool = block_pool_create(1 << 20);
    void *a, *b, *c, *big;

    (void)state;
    assert_non_null(pool);
    a = block_pool_alloc(pool, 40);
    b = block_pool_alloc(pool, 36);
    assert_non_null(a);
    assert_non_null(b);
    block_pool_release(pool, a);
    assert_int_equal(block_pool_cached(pool), 40);
    c = block_pool_alloc(pool, 33);
    assert_ptr_equal(c, a);
    assert_int_equal(block_pool_cached(pool), 0);
    block_pool_release(pool, b);
    block_pool_release(pool, c);
    /* last in, first out */
    assert_ptr_equal(block_pool_alloc(pool, 25), c);
    block_pool_release(pool, c);
    assert_int_equal(block_pool_cached(pool), 80);
    /* 24 bytes is another class */
    a = block_pool_alloc(pool, 24);
    assert_true(a != b && a != c);
    /* above the largest class nothing is kept */
    big = block_pool_alloc(pool, BLOCK_POOL_LARGEST + 1);
    assert_non_null(big);
    block_pool_release(pool, big);
    assert_int_equal(block_pool_cached(pool), 80);
    block_pool_release(pool, a);
    block_pool_free(pool);
}

/* freed blocks beyond the limit go back to malloc */
static void test_cache_limit(void **state)
{
    struct block_pool *pool = block_pool_create(1000);
    void *blocks[10];

    (void)state;
    assert_non_null(pool);
    for (size_t i = 0; i < 10; i++) {
        blocks[i] = block_pool_alloc(pool, 256);
        assert_non_null(blocks[i]);
    }
    for (size_t i = 0; i < 10; i++)
        block_pool_release(pool, blocks[i]);
    assert_int_equal(block_pool_cached(pool), 3 * 264); /* 256 bytes come from the 264 class */
    /* a zero limit keeps nothing */
    block_pool_free(pool);
    pool = block_pool_create(0);
    assert_non_null(pool);
    blocks[0] = block_pool_alloc(pool, 16);
    assert_non_null(blocks[0]);
    block_pool_release(pool, blocks[0]);
    assert_int_equal(block_pool_cached(pool), 0);
    block_pool_free(pool);
}

/* growing keeps the contents, within a class in place, across classes by copying */
static void test_grow(void **state)
{
    struct block_pool *pool = block_pool_create(1 << 20);
    unsigned char *p, *q;

    (void)state;
    assert_non_null(pool);
    p = block_pool_realloc(pool, NULL, 20);
    assert_non_null(p);
    fill(p, 20, 7);
    q = block_pool_realloc(pool, p, 24);
    assert_ptr_equal(q, p);
    q = block_pool_realloc(pool, p, 8);
    assert_ptr_equal(q, p);
    /* dynbuf-style doubling through the classes and past the largest */
    for (size_t size = 64, used = 20, seed = 7; size <= 4 * BLOCK_POOL_LARGEST; size *= 2) {
        q = block_pool_realloc(pool, p, size);
        assert_non_null(q);
        assert_filled(q, used, (unsigned char)seed);
        seed++;
        fill(q, size, (unsigned char)seed);
        used = size;
        p = q;
    }
    /* the blocks left behind wait in their classes */
    assert_true(block_pool_cached(pool) > 0);
    /* a pooled block grown with no pool (another thread) */
    q = block_pool_alloc(pool, 100);
    assert_non_null(q);
    fill(q, 100, 3);
    q = block_pool_realloc(NULL, q, 3000);
    assert_non_null(q);
    assert_filled(q, 100, 3);
    block_pool_release(NULL, q);
    block_pool_release(pool, p);
    block_pool_free(pool);
}

/* blocks outlive their pool, and blocks from no pool or plain malloc can be cached by one */
static void test_crossing(void **state)
{
    struct block_pool *pool = block_pool_create(1 << 20);
    void *other, *plain;

    (void)state;
    assert_non_null(pool);
    other = block_pool_alloc(NULL, 136);
    assert_non_null(other);
    block_pool_release(pool, other);
    assert_int_equal(block_pool_cached(pool), 136);
    assert_ptr_equal(block_pool_alloc(pool, 130), other);
    plain = malloc(200);
    assert_non_null(plain);
    block_pool_release(pool, plain);
    assert_int_equal(block_pool_cached(pool), 200);
    assert_ptr_equal(block_pool_alloc(pool, 190), plain);
    block_pool_free(pool);
    memset(other, 0xab, 136);
    block_pool_release(NULL, other);
    free(plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_reuse_by_class),
        cmocka_unit_test(test_cache_limit),
        cmocka_unit_test(test_grow),
        cmocka_unit_test(test_crossing),
    };

    return cmocka_run_group_tests_name("block_pool", tests, NULL, NULL);
}
