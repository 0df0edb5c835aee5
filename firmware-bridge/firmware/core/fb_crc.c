#include "fb_crc.h"

uint16_t fb_crc16(uint16_t crc, const uint8_t *data, size_t len)
{
    size_t i;
    for (i = 0; i < len; ++i) {
        int bit;
        unsigned int value = (unsigned int)crc ^ ((unsigned int)data[i] << 8);
        for (bit = 0; bit < 8; ++bit) {
            value = (value & 0x8000u) ? (value << 1) ^ 0x1021u : value << 1;
        }
        crc = (uint16_t)(value & 0xFFFFu);
    }
    return crc;
}
