/* Golden frames: the same bytes must decode to the same fields, and the fields encode to the same bytes. */
#include <string.h>

#include "fb_decoder.h"
#include "fb_protocol.h"
#include "fb_test.h"
#include "golden_frames.h"
#include "msg_compare.h"

static uint8_t out[FB_ENCODED_SIZE(FB_MAX_PAYLOAD)];
static uint8_t scratch[FB_MAX_ENCODED_FRAME + 1];
static uint8_t decoder_buf[FB_MAX_ENCODED_FRAME];

static void report(const golden_case *c, const char *what)
{
    fprintf(stderr, "golden case %s: %s\n", c->name, what);
}

static void check_encode(const golden_case *c)
{
    size_t len = 0;
    fb_status status = fb_encode_frame(&c->msg, out, sizeof out, &len);
    CHECK_EQ_INT(status, FB_OK);
    CHECK_EQ_INT(len, c->wire_len);
    if (status != FB_OK || len != c->wire_len || memcmp(out, c->wire, len) != 0) {
        report(c, "encoding differs from wire_hex");
        fb_test_failures++;
    }
}

static void check_raw_decode(const golden_case *c)
{
    fb_msg msg;
    fb_reject reject;
    CHECK_EQ_INT(fb_decode_frame(c->raw, c->raw_len, &msg, &reject), FB_FRAME_OK);
    if (!msg_equal(&msg, &c->msg)) {
        report(c, "raw_hex decodes to different fields");
        fb_test_failures++;
    }
}

static void check_cobs(const golden_case *c)
{
    long n;
    CHECK(c->wire_len >= 2 && c->wire[c->wire_len - 1] == 0);
    memcpy(scratch, c->wire, c->wire_len - 1);
    n = fb_cobs_decode_inplace(scratch, c->wire_len - 1);
    CHECK_EQ_INT(n, (long)c->raw_len);
    if (n != (long)c->raw_len || memcmp(scratch, c->raw, c->raw_len) != 0) {
        report(c, "COBS(wire) != raw");
        fb_test_failures++;
    }
}

static void check_stream_decode(const golden_case *c)
{
    fb_decoder d;
    fb_msg msg;
    fb_reject reject;
    size_t i;
    int messages = 0;
    fb_decoder_init(&d, decoder_buf, sizeof decoder_buf);
    for (i = 0; i < c->wire_len; ++i) {
        if (fb_decoder_push(&d, c->wire[i], &msg, &reject) == FB_DECODE_MESSAGE) {
            ++messages;
            CHECK_EQ_INT(i, c->wire_len - 1);
            if (!msg_equal(&msg, &c->msg)) {
                report(c, "wire_hex decodes to different fields");
                fb_test_failures++;
            }
        }
    }
    CHECK_EQ_INT(messages, 1);
    CHECK_EQ_INT(d.stats.frames_ok, 1);
    CHECK_EQ_INT(fb_decoder_errors(&d.stats), 0);
}

/* All golden frames back to back, each with one byte corrupted before it is sent again intact. */
static void check_concatenated_with_corruption(void)
{
    fb_decoder d;
    fb_msg msg;
    fb_reject reject;
    size_t k;
    size_t i;
    fb_decoder_init(&d, decoder_buf, sizeof decoder_buf);
    for (k = 0; k < GOLDEN_COUNT; ++k) {
        const golden_case *c = &golden_cases[k];
        int decoded = 0;
        for (i = 0; i < c->wire_len; ++i) {
            uint8_t byte = c->wire[i];
            if (i == c->wire_len / 2) {
                byte = (uint8_t)(byte ^ 0x5Au); /* corrupted copy */
            }
            if (byte == 0 && i != c->wire_len - 1) {
                byte = 0x01;
            }
            CHECK(fb_decoder_push(&d, byte, &msg, &reject) != FB_DECODE_MESSAGE);
        }
        for (i = 0; i < c->wire_len; ++i) {
            if (fb_decoder_push(&d, c->wire[i], &msg, &reject) == FB_DECODE_MESSAGE) {
                decoded = msg_equal(&msg, &c->msg);
            }
        }
        if (!decoded) {
            report(c, "intact frame after a corrupted copy did not decode");
            fb_test_failures++;
        }
    }
    CHECK_EQ_INT(d.stats.frames_ok, GOLDEN_COUNT);
    CHECK(d.stats.bad_crc + d.stats.garbage + d.stats.malformed > 0);
}

void test_golden(void)
{
    /* the message-table hashes compiled into the core are the ones the Python side computes */
    CHECK_EQ_INT(FB_SCHEMA_HASH_V10, GOLDEN_SCHEMA_HASH_V10);
    CHECK_EQ_INT(FB_SCHEMA_HASH_V11, GOLDEN_SCHEMA_HASH_V11);
    size_t k;
    CHECK(GOLDEN_COUNT >= 8);
    for (k = 0; k < GOLDEN_COUNT; ++k) {
        check_encode(&golden_cases[k]);
        check_raw_decode(&golden_cases[k]);
        check_cobs(&golden_cases[k]);
        check_stream_decode(&golden_cases[k]);
    }
    check_concatenated_with_corruption();
}
