/*
 * Fuzz target: arbitrary bytes into a READY device session (decoder + every 1.1 receive rule:
 * HELLO extension, schema check, NACK bursts, never-answer types, dedupe window, TIME_REQUEST,
 * ENTER_BOOTLOADER, inter-byte timeout). The first input byte advances the fake clock between
 * chunks so timing paths are reached too. Invariants checked: the decoder never buffers more than
 * its capacity, every byte the session writes decodes as a valid frame, and no frame it writes is
 * a NACK of an ACK/NACK/HEARTBEAT/unreliable type (R6).
 *
 * libFuzzer:  make fuzz            (clang -fsanitize=fuzzer,address,undefined)
 * smoke run:  make fuzz-smoke      (gcc + fuzz/fuzz_driver.c: golden frames mutated, ASan/UBSan)
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fb_decoder.h"
#include "fb_session.h"

static uint32_t clock_ms;
static int legacy; /* this run's device behaves as 1.0: the 1.1 types are unknown (nackable) to it */
static fb_decoder out_decoder;
static uint8_t out_buf[FB_MAX_ENCODED_FRAME];

static uint32_t now_cb(void *ctx)
{
    (void)ctx;
    return clock_ms;
}

static int write_cb(void *ctx, const uint8_t *data, size_t len)
{
    size_t i;
    fb_msg msg;
    fb_reject reject;
    (void)ctx;
    for (i = 0; i < len; ++i) {
        fb_decode_result r = fb_decoder_push(&out_decoder, data[i], &msg, &reject);
        if (r == FB_DECODE_REJECT) {
            fprintf(stderr, "reject type %u code %u\n", reject.type, reject.code);
            abort(); /* the session wrote a frame it cannot decode itself */
        }
        if (r == FB_DECODE_MESSAGE && msg.type == FB_TYPE_NACK && !fb_type_is_nackable(msg.u.ack.acked_type) &&
            !(legacy && (msg.u.ack.acked_type == FB_TYPE_TIME_REQUEST || msg.u.ack.acked_type == FB_TYPE_TIME_REPLY ||
                         msg.u.ack.acked_type == FB_TYPE_DEVICE_STATUS))) {
            fprintf(stderr, "nack of %u\n", msg.u.ack.acked_type);
            abort(); /* R6: never answer ACK, NACK, HEARTBEAT or unreliable frames */
        }
    }
    return 0;
}

static uint8_t message_cb(void *ctx, const fb_msg *msg)
{
    (void)ctx;
    return msg->type == FB_TYPE_IO_SET && msg->u.io_set.output_id > 3 ? FB_ERR_INVALID_ARGUMENT : FB_ERR_NONE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fb_session s;
    fb_session_config cfg;
    fb_session_io io;
    size_t pos = 0;
    memset(&io, 0, sizeof io);
    fb_session_default_config(&cfg);
    cfg.device_id = 0x5EED0001ul;
    cfg.capabilities |= FB_CAP_BOOTLOADER;
    legacy = size > 0 && (data[0] & 0x80u) != 0;
    cfg.minor_version = (uint8_t)(legacy ? 0u : 1u); /* also fuzz a 1.0 device */
    io.now_ms = now_cb;
    io.write = write_cb;
    io.on_message = message_cb;
    clock_ms = 1000;
    fb_decoder_init(&out_decoder, out_buf, sizeof out_buf);
    fb_session_init(&s, &cfg, &io);
    fb_session_start(&s);
    while (pos < size) {
        size_t chunk = 1u + (size_t)(data[pos] & 0x3Fu);
        clock_ms += (uint32_t)(data[pos] >> 6) * 60u; /* 0, 60, 120 or 180 ms between chunks */
        ++pos;
        if (chunk > size - pos) {
            chunk = size - pos;
        }
        fb_session_rx(&s, data + pos, chunk);
        fb_session_poll(&s);
        if (s.decoder.len > s.decoder.cap || out_decoder.len > out_decoder.cap) {
            abort();
        }
        pos += chunk;
    }
    return 0;
}
