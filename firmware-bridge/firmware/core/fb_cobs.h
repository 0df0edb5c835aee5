/* firmware-bridge: Consistent Overhead Byte Stuffing (canonical encoding, no delimiter). */
#ifndef FB_COBS_H
#define FB_COBS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Upper bound of the encoded size of n input bytes. */
#define FB_COBS_MAX_ENCODED(n) ((n) + (n) / 254u + 1u)

/*
 * Encode src[0..len) into dst (capacity cap). Returns the encoded length, or 0 if it does not fit.
 * dst may overlap src only if src lies at dst + FB_COBS_MAX_ENCODED(len) - len or later
 * (fb_encode_frame uses that to encode in place).
 */
size_t fb_cobs_encode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap);

/*
 * Decode buf[0..len) in place. Returns the decoded length, or -1 if the input is not valid COBS
 * (contains 0x00 or a group runs past the end).
 */
long fb_cobs_decode_inplace(uint8_t *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* FB_COBS_H */
