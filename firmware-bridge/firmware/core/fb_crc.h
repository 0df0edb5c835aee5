/* firmware-bridge: CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xor-out). */
#ifndef FB_CRC_H
#define FB_CRC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FB_CRC_INIT 0xFFFFu

/* Continue a CRC over data[0..len); start with crc = FB_CRC_INIT. crc("123456789") = 0x29B1. */
uint16_t fb_crc16(uint16_t crc, const uint8_t *data, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* FB_CRC_H */
