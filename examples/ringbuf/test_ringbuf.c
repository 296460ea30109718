/* The library's own test program: `make test` builds and runs it. */
#include <assert.h>
#include <stdio.h>

#include "ringbuf.h"

static void test_init_rejects_bad_arguments(void)
{
    uint8_t storage[4];
    ringbuf_t rb;
    assert(ringbuf_init(NULL, storage, 4) == -1);
    assert(ringbuf_init(&rb, NULL, 4) == -1);
    assert(ringbuf_init(&rb, storage, 0) == -1);
    assert(ringbuf_init(&rb, storage, 4) == 0);
    assert(ringbuf_count(&rb) == 0);
    assert(ringbuf_space(&rb) == 4);
}

static void test_fifo_order_and_wraparound(void)
{
    uint8_t storage[3];
    uint8_t byte = 0;
    ringbuf_t rb;
    ringbuf_init(&rb, storage, 3);
    assert(ringbuf_push(&rb, 1));
    assert(ringbuf_push(&rb, 2));
    assert(ringbuf_push(&rb, 3));
    assert(!ringbuf_push(&rb, 4)); /* full */
    assert(ringbuf_pop(&rb, &byte) && byte == 1);
    assert(ringbuf_push(&rb, 4)); /* wraps around */
    assert(ringbuf_pop(&rb, &byte) && byte == 2);
    assert(ringbuf_pop(&rb, &byte) && byte == 3);
    assert(ringbuf_pop(&rb, &byte) && byte == 4);
    assert(ringbuf_count(&rb) == 0);
}

static void test_pop_on_empty_changes_nothing(void)
{
    uint8_t storage[2];
    uint8_t byte = 42;
    ringbuf_t rb;
    ringbuf_init(&rb, storage, 2);
    assert(!ringbuf_pop(&rb, &byte));
    assert(byte == 42);
    assert(ringbuf_count(&rb) == 0);
}

static void test_peek_does_not_remove(void)
{
    uint8_t storage[4];
    uint8_t out[4] = {0};
    ringbuf_t rb;
    ringbuf_init(&rb, storage, 4);
    ringbuf_push(&rb, 7);
    ringbuf_push(&rb, 8);
    assert(ringbuf_peek(&rb, out, 4) == 2);
    assert(out[0] == 7 && out[1] == 8);
    assert(ringbuf_count(&rb) == 2);
    ringbuf_clear(&rb);
    assert(ringbuf_count(&rb) == 0);
}

int main(void)
{
    test_init_rejects_bad_arguments();
    test_fifo_order_and_wraparound();
    test_pop_on_empty_changes_nothing();
    test_peek_does_not_remove();
    puts("ringbuf: all tests passed");
    return 0;
}
