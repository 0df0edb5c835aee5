/* Streaming decoder: bounded buffer, resynchronisation, counters, fuzzing. */
#include <string.h>

#include "fb_decoder.h"
#include "fb_test.h"
#include "golden_frames.h"
#include "msg_compare.h"

static uint8_t big_buf[FB_MAX_ENCODED_FRAME];
static uint8_t small_buf[64];
static uint32_t rng_state = 12345u;

static uint32_t rng(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

/* Push bytes; returns the number of messages, last one in *last. */
static int push_all(fb_decoder *d, const uint8_t *data, size_t len, fb_msg *last)
{
    fb_reject reject;
    fb_msg msg;
    size_t i;
    int messages = 0;
    for (i = 0; i < len; ++i) {
        if (fb_decoder_push(d, data[i], &msg, &reject) == FB_DECODE_MESSAGE) {
            ++messages;
            *last = msg;
        }
        CHECK(d->len <= d->cap);
    }
    return messages;
}

static const golden_case *find_case(const char *name)
{
    size_t k;
    for (k = 0; k < GOLDEN_COUNT; ++k) {
        if (strcmp(golden_cases[k].name, name) == 0) {
            return &golden_cases[k];
        }
    }
    return &golden_cases[0];
}

static void test_oversized_then_resync(void)
{
    fb_decoder d;
    fb_msg last;
    const golden_case *trigger = find_case("trigger");
    size_t i;
    fb_decoder_init(&d, big_buf, sizeof big_buf);
    for (i = 0; i < FB_MAX_ENCODED_FRAME + 100; ++i) {
        uint8_t byte = 0x01;
        CHECK_EQ_INT(push_all(&d, &byte, 1, &last), 0);
    }
    CHECK_EQ_INT(d.stats.oversized, 1);
    CHECK_EQ_INT(d.stats.max_buffered, FB_MAX_ENCODED_FRAME);
    /* still skipping: the trigger is glued to the oversized frame and lost with it */
    CHECK_EQ_INT(push_all(&d, trigger->wire, trigger->wire_len, &last), 0);
    CHECK_EQ_INT(push_all(&d, trigger->wire, trigger->wire_len, &last), 1);
    CHECK(msg_equal(&last, &trigger->msg));
    CHECK_EQ_INT(d.stats.oversized, 1);
}

static void test_small_buffer(void)
{
    fb_decoder d;
    fb_msg last;
    const golden_case *big = find_case("sensor_frame_long");
    const golden_case *ack = find_case("ack");
    fb_decoder_init(&d, small_buf, sizeof small_buf);
    CHECK_EQ_INT(push_all(&d, big->wire, big->wire_len, &last), 0);
    CHECK_EQ_INT(d.stats.oversized, 1);
    CHECK_EQ_INT(push_all(&d, ack->wire, ack->wire_len, &last), 1);
    CHECK(msg_equal(&last, &ack->msg));
    CHECK(d.stats.max_buffered <= sizeof small_buf);
}

static void test_empty_frames_and_garbage(void)
{
    static const uint8_t zeros[] = {0, 0, 0, 0};
    static const uint8_t junk[] = {0x05, 0x01, 0x00, 0x02, 0x00};
    fb_decoder d;
    fb_msg last;
    fb_decoder_init(&d, big_buf, sizeof big_buf);
    CHECK_EQ_INT(push_all(&d, zeros, sizeof zeros, &last), 0);
    CHECK_EQ_INT(fb_decoder_errors(&d.stats), 0);
    CHECK_EQ_INT(push_all(&d, junk, sizeof junk, &last), 0);
    CHECK_EQ_INT(d.stats.garbage, 2); /* invalid COBS, then too short */
}

static void test_fuzz(fb_decoder *d, int rounds)
{
    static uint8_t data[3000];
    const golden_case *sentinel = find_case("heartbeat");
    fb_msg last;
    int r;
    for (r = 0; r < rounds; ++r) {
        size_t len;
        size_t i;
        uint32_t kind = rng() % 3;
        if (kind == 0) {
            len = rng() % sizeof data;
            for (i = 0; i < len; ++i) {
                data[i] = (uint8_t)rng();
            }
        } else {
            const golden_case *c = &golden_cases[rng() % GOLDEN_COUNT];
            len = c->wire_len;
            memcpy(data, c->wire, len);
            for (i = 0; i < 1 + rng() % 4; ++i) {
                data[rng() % len] ^= (uint8_t)(1u << (rng() % 8));
            }
            if (kind == 2) {
                len = rng() % len; /* truncated */
            }
        }
        (void)push_all(d, data, len, &last);
        CHECK(d->stats.max_buffered <= d->cap);
        {
            static const uint8_t delimiter = 0;
            (void)push_all(d, &delimiter, 1, &last);
        }
        if (push_all(d, sentinel->wire, sentinel->wire_len, &last) < 1 || !msg_equal(&last, &sentinel->msg)) {
            fprintf(stderr, "fuzz round %d: no resync\n", r);
            fb_test_failures++;
            return;
        }
    }
}

void test_decoder(void)
{
    fb_decoder d;
    test_oversized_then_resync();
    test_small_buffer();
    test_empty_frames_and_garbage();
    fb_decoder_init(&d, big_buf, sizeof big_buf);
    test_fuzz(&d, 20000);
    CHECK(d.stats.bad_crc > 0 && d.stats.garbage > 0 && d.stats.oversized > 0);
    fb_decoder_init(&d, small_buf, sizeof small_buf);
    test_fuzz(&d, 5000);
}
