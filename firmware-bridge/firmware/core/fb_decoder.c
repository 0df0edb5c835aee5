#include "fb_decoder.h"

void fb_decoder_init(fb_decoder *d, uint8_t *buf, size_t cap)
{
    fb_decoder_stats zero = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    d->buf = buf;
    d->cap = cap;
    d->len = 0;
    d->skipping = 0;
    d->stats = zero;
}

void fb_decoder_reset(fb_decoder *d)
{
    d->len = 0;
    d->skipping = 0;
}

void fb_decoder_expire(fb_decoder *d)
{
    if (d->len > 0) {
        d->stats.partial_timeouts++;
    }
    fb_decoder_reset(d);
}

uint32_t fb_decoder_errors(const fb_decoder_stats *s)
{
    return s->garbage + s->oversized + s->bad_crc + s->bad_version + s->unknown_type + s->malformed +
           s->partial_timeouts;
}

static fb_decode_result complete(fb_decoder *d, fb_msg *msg, fb_reject *reject)
{
    long raw_len;
    size_t len = d->len;

    d->len = 0;
    if (d->skipping) {
        d->skipping = 0;
        return FB_DECODE_NONE;
    }
    if (len == 0) {
        return FB_DECODE_NONE; /* empty frame: flush / keep-alive delimiter */
    }
    raw_len = fb_cobs_decode_inplace(d->buf, len);
    if (raw_len < 0) {
        d->stats.garbage++;
        return FB_DECODE_NONE;
    }
    switch (fb_decode_frame(d->buf, (size_t)raw_len, msg, reject)) {
    case FB_FRAME_OK:
        d->stats.frames_ok++;
        return FB_DECODE_MESSAGE;
    case FB_FRAME_GARBAGE:
        d->stats.garbage++;
        return FB_DECODE_NONE;
    case FB_FRAME_OVERSIZED:
        d->stats.oversized++;
        return FB_DECODE_NONE;
    case FB_FRAME_BAD_CRC:
        d->stats.bad_crc++;
        return FB_DECODE_NONE;
    case FB_FRAME_BAD_VERSION:
        d->stats.bad_version++;
        return FB_DECODE_REJECT;
    case FB_FRAME_UNKNOWN_TYPE:
        d->stats.unknown_type++;
        return FB_DECODE_REJECT;
    case FB_FRAME_MALFORMED:
    default:
        d->stats.malformed++;
        return FB_DECODE_REJECT;
    }
}

fb_decode_result fb_decoder_push(fb_decoder *d, uint8_t byte, fb_msg *msg, fb_reject *reject)
{
    d->stats.bytes_in++;
    if (byte == 0) {
        return complete(d, msg, reject);
    }
    if (d->skipping) {
        return FB_DECODE_NONE;
    }
    if (d->len >= d->cap) {
        d->stats.oversized++;
        d->len = 0;
        d->skipping = 1;
        return FB_DECODE_NONE;
    }
    d->buf[d->len++] = byte;
    if (d->len > d->stats.max_buffered) {
        d->stats.max_buffered = (uint32_t)d->len;
    }
    return FB_DECODE_NONE;
}
