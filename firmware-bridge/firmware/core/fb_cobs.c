#include "fb_cobs.h"

size_t fb_cobs_encode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap)
{
    size_t in = 0;
    size_t out = 1;    /* dst[0] is the first code byte */
    size_t code_at = 0;
    uint8_t code = 1;

    if (cap == 0) {
        return 0;
    }
    while (in < len) {
        uint8_t byte = src[in++];
        if (byte != 0) {
            if (out >= cap) {
                return 0;
            }
            dst[out++] = byte;
            ++code;
        }
        if (byte == 0 || code == 0xFFu) {
            dst[code_at] = code;
            code = 1;
            if (byte == 0 || in < len) {
                /* open the next group; a full group at the very end needs no empty group */
                if (out >= cap) {
                    return 0;
                }
                code_at = out++;
            } else {
                return out;
            }
        }
    }
    dst[code_at] = code;
    return out;
}

long fb_cobs_decode_inplace(uint8_t *buf, size_t len)
{
    size_t in = 0;
    size_t out = 0;

    while (in < len) {
        uint8_t code = buf[in];
        size_t end = in + code;
        size_t i;
        if (code == 0 || end > len) {
            return -1;
        }
        for (i = in + 1; i < end; ++i) {
            if (buf[i] == 0) {
                return -1;
            }
            buf[out++] = buf[i]; /* out <= i always: decoding never grows */
        }
        in = end;
        if (code != 0xFFu && in < len) {
            buf[out++] = 0;
        }
    }
    return (long)out;
}
