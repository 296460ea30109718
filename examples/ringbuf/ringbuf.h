/**
 * @file ringbuf.h
 * @brief A fixed-capacity byte ring buffer over caller-provided storage (no allocation).
 */
#ifndef RINGBUF_H
#define RINGBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** A ring buffer. Fields are private: use the functions below. */
typedef struct ringbuf {
    uint8_t *data;   /**< caller-provided storage of `capacity` bytes */
    size_t capacity; /**< number of bytes the buffer can hold */
    size_t head;     /**< index where the next byte is written */
    size_t tail;     /**< index of the oldest byte */
    size_t count;    /**< number of bytes currently stored */
} ringbuf_t;

/**
 * @brief Initialise @p rb over @p storage.
 * @return 0 on success, -1 if @p rb or @p storage is NULL or @p capacity is 0.
 */
int ringbuf_init(ringbuf_t *rb, uint8_t *storage, size_t capacity);

/** @brief Append one byte. @return false (and change nothing) when the buffer is full. */
bool ringbuf_push(ringbuf_t *rb, uint8_t byte);

/**
 * @brief Remove the oldest byte and store it in @p out.
 * @return false (and change nothing) when the buffer is empty.
 */
bool ringbuf_pop(ringbuf_t *rb, uint8_t *out);

/** @brief Number of bytes stored. */
size_t ringbuf_count(const ringbuf_t *rb);

/** @brief Number of bytes that can still be pushed. */
size_t ringbuf_space(const ringbuf_t *rb);

/**
 * @brief Copy up to @p n of the oldest bytes into @p out without removing them.
 * @return the number of bytes copied (at most ringbuf_count()).
 */
size_t ringbuf_peek(const ringbuf_t *rb, uint8_t *out, size_t n);

/** @brief Drop all stored bytes. */
void ringbuf_clear(ringbuf_t *rb);

#endif /* RINGBUF_H */
