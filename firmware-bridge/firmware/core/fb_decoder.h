/*
 * firmware-bridge: streaming frame decoder (byte at a time, caller-provided buffer).
 *
 * Never overflows: at most `cap` encoded bytes are buffered; a longer frame is dropped, counted as
 * oversized, and everything up to the next 0x00 is skipped (resynchronisation).
 */
#ifndef FB_DECODER_H
#define FB_DECODER_H

#include <stddef.h>
#include <stdint.h>

#include "fb_protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t bytes_in;
    uint32_t frames_ok;
    uint32_t garbage;
    uint32_t oversized;
    uint32_t bad_crc;
    uint32_t bad_version;
    uint32_t unknown_type;
    uint32_t malformed;
    uint32_t max_buffered;
    uint32_t partial_timeouts; /* partial frames dropped by fb_decoder_expire (inter-byte timeout) */
} fb_decoder_stats;

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int skipping;
    fb_decoder_stats stats;
} fb_decoder;

typedef enum {
    FB_DECODE_NONE = 0,   /* need more bytes (or a frame was dropped) */
    FB_DECODE_MESSAGE = 1, /* *msg holds a message, valid until the next push */
    FB_DECODE_REJECT = 2  /* *reject holds a CRC-valid but unusable frame: send NACK */
} fb_decode_result;

/* buf/cap: storage for one encoded frame; FB_MAX_ENCODED_FRAME accepts every legal frame. */
void fb_decoder_init(fb_decoder *d, uint8_t *buf, size_t cap);

/* Drop any partial frame (counters are kept). */
void fb_decoder_reset(fb_decoder *d);

fb_decode_result fb_decoder_push(fb_decoder *d, uint8_t byte, fb_msg *msg, fb_reject *reject);

/* Inter-byte timeout: drop a partial frame (counted in partial_timeouts if one was buffered). */
void fb_decoder_expire(fb_decoder *d);

/* Sum of all drop counters. */
uint32_t fb_decoder_errors(const fb_decoder_stats *s);

#ifdef __cplusplus
}
#endif

#endif /* FB_DECODER_H */
