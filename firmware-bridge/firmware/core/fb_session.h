/*
 * firmware-bridge: session core (handshake, heartbeats, ACK/NACK, retries, duplicate suppression).
 *
 * No hardware dependency: time and byte output come in through fb_session_io, received bytes
 * are pushed with fb_session_rx, and timers advance in fb_session_poll (call it every loop
 * iteration, or at least every 10 ms). Not reentrant and not interrupt-safe: call all fb_session_*
 * functions from one context (e.g. the Arduino loop), never from an ISR.
 *
 * Reliable messages (TRIGGER, RESULT, IO_SET) are stop-and-wait per type: while one is in flight,
 * fb_session_send returns FB_E_BUSY for another of the same type; keep it and try again later.
 */
#ifndef FB_SESSION_H
#define FB_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "fb_config.h"
#include "fb_decoder.h"
#include "fb_protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FB_RELIABLE_SLOTS 4 /* TRIGGER, RESULT, IO_SET, ENTER_BOOTLOADER */

typedef enum {
    FB_SESSION_STOPPED = 0,
    FB_SESSION_CONNECTING = 1,
    FB_SESSION_READY = 2,
    FB_SESSION_LINK_LOST = 3
} fb_session_state;

typedef enum {
    FB_DELIVERY_ACKED = 1,
    FB_DELIVERY_NACKED = 2,
    FB_DELIVERY_TIMED_OUT = 3
} fb_delivery_status;

typedef struct {
    void *ctx; /* passed to every callback */
    /* Milliseconds from a free-running clock (wraps at 2^32). Required. */
    uint32_t (*now_ms)(void *ctx);
    /* Write all len bytes; return 0 on success, non-zero on failure. Required. */
    int (*write)(void *ctx, const uint8_t *data, size_t len);
    /*
     * A received SENSOR_FRAME, TRIGGER, RESULT or IO_SET (duplicates are filtered out). For the
     * reliable types return FB_ERR_NONE to ACK it, or a NACK code (e.g. FB_ERR_INVALID_ARGUMENT,
     * FB_ERR_BUSY) to refuse it. msg (and sensor data) is only valid during the call. Required.
     */
    uint8_t (*on_message)(void *ctx, const fb_msg *msg);
    /* Optional: final outcome of a reliable message sent with fb_session_send. */
    void (*on_delivery)(void *ctx, uint8_t type, uint16_t seq, fb_delivery_status status, uint8_t code);
    /* Optional: session state changes. */
    void (*on_state)(void *ctx, fb_session_state state);
    /* Optional: a TIME_REPLY (host side of time sync; a device only answers requests). */
    void (*on_time_reply)(void *ctx, const fb_time_reply *reply, uint32_t now_ms);
} fb_session_io;

typedef struct {
    uint32_t device_id;
    uint32_t capabilities;
    const char *firmware;  /* printable ASCII, at most FB_FIRMWARE_MAX chars */
    uint16_t max_payload;  /* largest payload we can receive (announced in HELLO) */
    uint16_t initial_seq;  /* should be random per boot (e.g. from ADC noise) */
    uint32_t boot_id;      /* 1.1: random per boot, sent in HELLO; the peer clears its duplicate memory on a change */
    uint8_t minor_version; /* 1 (default): speak 1.1; 0: behave exactly as a 1.0 implementation */
    uint16_t heartbeat_interval_ms;
    uint16_t link_timeout_ms;
    uint16_t ack_timeout_ms;
    uint16_t hello_interval_ms;
    uint8_t max_retries;
    uint16_t duplicate_window_ms;  /* a repeat of the last ACKed (type, seq) is a duplicate only this long */
    uint16_t inter_byte_timeout_ms; /* a partial frame with no byte for this long is dropped */
    uint16_t nack_burst_ms;        /* at most one UNSUPPORTED_VERSION / UNKNOWN_TYPE NACK per burst */
} fb_session_config;

typedef struct {
    uint32_t tx_frames;
    uint32_t tx_failed;
    uint32_t rx_messages;
    uint32_t delivered;
    uint32_t duplicates;
    uint32_t acks_rx;
    uint32_t nacks_rx;
    uint32_t nacks_tx;
    uint32_t retries;
    uint32_t timeouts;
    uint32_t stray_acks;
    uint32_t handshakes;
    uint32_t link_losses;
    uint32_t incompatible;
    uint32_t schema_mismatch;
    uint32_t nacks_suppressed; /* rejected frames not answered (never-answer types, NACK bursts) */
    uint32_t unadvertised;     /* fb_session_send refused: the peer did not advertise the type */
    uint32_t time_requests;    /* TIME_REQUESTs answered */
} fb_session_stats;

typedef struct {
    fb_msg msg;
    uint8_t active;
    uint8_t attempts;
    uint8_t last_code;
    uint32_t deadline;
} fb_pending;

typedef struct {
    fb_session_config cfg;
    fb_session_io io;
    fb_decoder decoder; /* points into rx_buf: do not copy an fb_session */
    uint8_t rx_buf[FB_SESSION_RX_CAP];
    uint8_t tx_buf[FB_SESSION_TX_CAP];
    fb_session_state state;
    uint16_t next_seq;
    uint32_t start_ms;
    uint32_t last_rx_ms;
    uint32_t next_heartbeat_ms;
    uint32_t next_hello_ms;
    fb_pending pending[FB_RELIABLE_SLOTS];
    uint16_t last_seen_seq[FB_RELIABLE_SLOTS];
    uint8_t last_seen_valid[FB_RELIABLE_SLOTS];
    uint32_t last_seen_ms[FB_RELIABLE_SLOTS];
    uint32_t peer_boot_id;
    uint8_t minor;            /* negotiated minor version while READY */
    uint8_t burst_open;       /* a valid frame arrived since the last burst NACK */
    uint8_t burst_nacked;     /* a burst NACK was ever sent */
    uint32_t last_burst_nack_ms;
    uint32_t last_byte_ms;
    fb_hello peer;
    uint8_t has_peer;
    fb_heartbeat peer_heartbeat;
    fb_session_stats stats;
} fb_session;

/* Fill cfg with the protocol defaults (device_id 0, all capabilities, firmware "fb-ref/1.0.0"). */
void fb_session_default_config(fb_session_config *cfg);

void fb_session_init(fb_session *s, const fb_session_config *cfg, const fb_session_io *io);

/* Begin (or, after the byte link was re-established, restart) the handshake: sends 0x00 and HELLO. */
void fb_session_start(fb_session *s);

/* Feed received bytes. */
void fb_session_rx(fb_session *s, const uint8_t *data, size_t len);

/* Advance timers: heartbeats, HELLO retries, link-lost detection, retransmissions. */
void fb_session_poll(fb_session *s);

/*
 * Send a SENSOR_FRAME, TRIGGER, DEVICE_STATUS, RESULT, IO_SET or HEARTBEAT; assigns msg->seq.
 * Returns FB_OK, FB_E_BUSY (reliable type in flight), FB_E_INVALID, FB_E_UNSUPPORTED (the peer's
 * HELLO did not advertise the type, or it is 1.1-only and the peer speaks 1.0), FB_E_TOO_LARGE (does
 * not fit FB_SESSION_TX_CAP) or FB_E_IO (write failed; reliable messages are retried anyway and
 * return FB_OK).
 */
fb_status fb_session_send(fb_session *s, fb_msg *msg);

int fb_session_is_ready(const fb_session *s);

/* 1 if a reliable message of this type is waiting for its ACK. */
int fb_session_in_flight(const fb_session *s, uint8_t type);

#ifdef __cplusplus
}
#endif

#endif /* FB_SESSION_H */
