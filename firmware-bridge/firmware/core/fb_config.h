/*
 * firmware-bridge: compile-time configuration of the C core.
 *
 * Every value can be overridden with -D on the compiler command line (or by editing this file
 * in a board's copy of the core). The defaults suit the host unit tests; small MCUs should lower
 * FB_SESSION_RX_CAP (what the device receives is at most 46 bytes of payload) and size
 * FB_SESSION_TX_CAP for the largest SENSOR_FRAME they send.
 */
#ifndef FB_CONFIG_H
#define FB_CONFIG_H

/* Receive buffer of a session's decoder, in encoded bytes (excluding the 0x00 delimiter).
 * Frames longer than this are dropped and counted as oversized. Minimum useful: 64. */
#ifndef FB_SESSION_RX_CAP
#define FB_SESSION_RX_CAP 2065u
#endif

/* Transmit scratch buffer of a session: one complete encoded frame including the delimiter.
 * FB_ENCODED_SIZE(payload) (see fb_protocol.h) gives the need for a given payload size. */
#ifndef FB_SESSION_TX_CAP
#define FB_SESSION_TX_CAP 2066u
#endif

/* Timing defaults in milliseconds (PROTOCOL.md sections 7-9). */
#ifndef FB_HEARTBEAT_INTERVAL_MS
#define FB_HEARTBEAT_INTERVAL_MS 1000u
#endif
#ifndef FB_LINK_TIMEOUT_MS
#define FB_LINK_TIMEOUT_MS 3500u
#endif
#ifndef FB_ACK_TIMEOUT_MS
#define FB_ACK_TIMEOUT_MS 300u
#endif
#ifndef FB_MAX_RETRIES
#define FB_MAX_RETRIES 3u
#endif
#ifndef FB_HELLO_INTERVAL_MS
#define FB_HELLO_INTERVAL_MS 500u
#endif
#ifndef FB_DUPLICATE_WINDOW_MS
#define FB_DUPLICATE_WINDOW_MS 2000u
#endif
#ifndef FB_INTER_BYTE_TIMEOUT_MS
#define FB_INTER_BYTE_TIMEOUT_MS 100u
#endif
#ifndef FB_NACK_BURST_MS
#define FB_NACK_BURST_MS 1000u
#endif

#endif /* FB_CONFIG_H */
