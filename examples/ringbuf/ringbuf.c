#include "ringbuf.h"

int ringbuf_init(ringbuf_t *rb, uint8_t *storage, size_t capacity)
{
    if (rb == NULL || storage == NULL || capacity == 0) {
        return -1;
    }
    rb->data = storage;
    rb->capacity = capacity;
    rb->head = 0;
    rb->tail = 0;
    rb->count = 0;
    return 0;
}

bool ringbuf_push(ringbuf_t *rb, uint8_t byte)
{
    if (rb->count == rb->capacity) {
        return false;
    }
    rb->data[rb->head] = byte;
    rb->head = (rb->head + 1) % rb->capacity;
    rb->count++;
    return true;
}

/**
 * @brief Remove the oldest byte and store it in @p out.
 * @return false (and change nothing) when the buffer is empty.
 */
bool ringbuf_pop(ringbuf_t *rb, uint8_t *out)
{
    /* TODO: implement */
    return false;
}

size_t ringbuf_count(const ringbuf_t *rb)
{
    return rb->count;
}

size_t ringbuf_space(const ringbuf_t *rb)
{
    return rb->capacity - rb->count;
}

size_t ringbuf_peek(const ringbuf_t *rb, uint8_t *out, size_t n)
{
    size_t copied = 0;
    size_t index = rb->tail;
    while (copied < n && copied < rb->count) {
        out[copied++] = rb->data[index];
        index = (index + 1) % rb->capacity;
    }
    return copied;
}

void ringbuf_clear(ringbuf_t *rb)
{
    rb->head = 0;
    rb->tail = 0;
    rb->count = 0;
}
