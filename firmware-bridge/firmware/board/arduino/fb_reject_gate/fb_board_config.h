/*
 * Board-specific sizes for the fb_reject_gate sketch (included ahead of the core's fb_config.h
 * defaults by `make arduino-sync` and `make arduino-check`).
 *
 * The device only receives small messages (HELLO <= 46 B payload, RESULT, IO_SET, ACK/NACK,
 * HEARTBEAT), so a 128-byte receive buffer is plenty; the transmit buffer must hold one encoded
 * SENSOR_FRAME of float32 [128, 3] (payload 7 + 2*2 + 1536 = 1547 bytes).
 */
#ifndef FB_BOARD_CONFIG_H
#define FB_BOARD_CONFIG_H

#define FB_SESSION_RX_CAP 128u
#define FB_SESSION_TX_CAP FB_ENCODED_SIZE(1547u)

#endif
