/*
 * firmware-bridge: protocol v1 message types and frame encode/decode (no I/O, no allocation).
 * See PROTOCOL.md for the normative description; this header mirrors it.
 */
#ifndef FB_PROTOCOL_H
#define FB_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "fb_cobs.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FB_PROTOCOL_VERSION 1u
#define FB_MIN_PROTOCOL_VERSION 1u
#define FB_MAX_PROTOCOL_VERSION 1u
#define FB_PROTOCOL_MINOR 1u           /* announced in the HELLO extension (1.0 peers: none) */
#define FB_SCHEMA_HASH_V10 0xA6C9C4E1ul /* CRC-32 of the 1.0 message table (PROTOCOL.md 5.1) */
#define FB_SCHEMA_HASH_V11 0x49A58E38ul /* CRC-32 of the 1.1 message table */
#define FB_REF_SEQ_NONE 0xFFFFu         /* RESULT.ref_seq: answers no message; never a 1.1 seq */
#define FB_MIN_MAX_PAYLOAD 64u          /* smallest legal HELLO max_payload */
#define FB_BOOTLOADER_MAGIC 0xB00710ADul
#define FB_HEADER_SIZE 6u
#define FB_CRC_SIZE 2u
#define FB_MAX_PAYLOAD 2048u
#define FB_MAX_RAW_FRAME (FB_HEADER_SIZE + FB_MAX_PAYLOAD + FB_CRC_SIZE)
#define FB_MAX_ENCODED_FRAME FB_COBS_MAX_ENCODED(FB_MAX_RAW_FRAME) /* 2065, without delimiter */
/* Buffer size that always fits the encoded frame (incl. delimiter) of a payload of n bytes. */
#define FB_ENCODED_SIZE(n) (FB_COBS_MAX_ENCODED(FB_HEADER_SIZE + (n) + FB_CRC_SIZE) + 1u)
#define FB_MAX_RANK 4u
#define FB_FIRMWARE_MAX 32u

/* Message types */
enum {
    FB_TYPE_HELLO = 0x01,
    FB_TYPE_ACK = 0x02,
    FB_TYPE_NACK = 0x03,
    FB_TYPE_HEARTBEAT = 0x04,
    FB_TYPE_TIME_REQUEST = 0x05,  /* 1.1 */
    FB_TYPE_TIME_REPLY = 0x06,    /* 1.1 */
    FB_TYPE_SENSOR_FRAME = 0x10,
    FB_TYPE_TRIGGER = 0x11,
    FB_TYPE_DEVICE_STATUS = 0x12, /* 1.1 */
    FB_TYPE_RESULT = 0x20,
    FB_TYPE_IO_SET = 0x21,
    FB_TYPE_ENTER_BOOTLOADER = 0x22 /* 1.1, reliable */
};

/* NACK error codes */
enum {
    FB_ERR_NONE = 0x00, /* not sent on the wire: "accept" in fb_session callbacks */
    FB_ERR_UNKNOWN_TYPE = 0x01,
    FB_ERR_MALFORMED = 0x02,
    FB_ERR_UNSUPPORTED_VERSION = 0x03,
    FB_ERR_BUSY = 0x04,
    FB_ERR_INVALID_ARGUMENT = 0x05,
    FB_ERR_NOT_READY = 0x06,
    FB_ERR_INTERNAL = 0xFF
};

/* SENSOR_FRAME element types */
enum {
    FB_DTYPE_U8 = 1,
    FB_DTYPE_I8 = 2,
    FB_DTYPE_I16 = 3,
    FB_DTYPE_U16 = 4,
    FB_DTYPE_I32 = 5,
    FB_DTYPE_F32 = 6
};

/* HELLO bits */
#define FB_HELLO_REPLY_REQUESTED 0x01u
#define FB_CAP_SENSOR_FRAME (1ul << 0)
#define FB_CAP_TRIGGER (1ul << 1)
#define FB_CAP_RESULT (1ul << 2)
#define FB_CAP_IO_SET (1ul << 3)
#define FB_CAP_HEARTBEAT (1ul << 4)
#define FB_CAP_TIME_SYNC (1ul << 5)     /* 1.1 */
#define FB_CAP_DEVICE_STATUS (1ul << 6) /* 1.1 */
#define FB_CAP_BOOTLOADER (1ul << 7)    /* 1.1 */

/* DEVICE_STATUS fault_flags (bits 4..31 reserved: send 0, ignore) */
#define FB_FAULT_SENSOR (1ul << 0)
#define FB_FAULT_OUTPUT (1ul << 1)
#define FB_FAULT_BROWNOUT_RESET (1ul << 2)
#define FB_FAULT_WATCHDOG_RESET (1ul << 3)

#define FB_VERDICT_PASS 0u
#define FB_VERDICT_FAIL 1u

/* Return codes of this module */
typedef enum {
    FB_OK = 0,
    FB_E_TOO_LARGE = -1, /* payload > FB_MAX_PAYLOAD or output buffer too small */
    FB_E_INVALID = -2,   /* a field is out of range (e.g. rank 0, data length mismatch) */
    FB_E_BUSY = -3,      /* fb_session_send: a message of this reliable type is still in flight */
    FB_E_IO = -4,        /* fb_session_send: the write callback failed */
    FB_E_UNSUPPORTED = -5 /* fb_session_send: the peer did not advertise this type */
} fb_status;

typedef struct {
    uint8_t flags;
    uint8_t min_version;
    uint8_t max_version;
    uint32_t device_id;
    uint32_t capabilities;
    uint16_t max_payload;
    char firmware[FB_FIRMWARE_MAX + 1]; /* NUL-terminated, printable ASCII */
    /* 1.1 extension, appended after the firmware string; has_extension 0 = a 1.0 HELLO */
    uint8_t has_extension;
    uint8_t minor_version;
    uint32_t schema_hash;
    uint32_t boot_id;
} fb_hello;

typedef struct {
    uint8_t sensor_id;
    uint32_t timestamp_ms;
    uint8_t dtype;
    uint8_t rank;
    uint16_t shape[FB_MAX_RANK];
    const uint8_t *data; /* little-endian elements; when decoded, points into the decoder buffer */
    uint16_t data_len;
} fb_sensor_frame;

typedef struct {
    uint8_t input_id;
    uint32_t timestamp_ms;
} fb_trigger;

typedef struct {
    uint32_t result_id;
    uint16_t ref_seq;
    int16_t label;
    uint16_t score_permille;
    uint8_t verdict;
} fb_result;

typedef struct {
    uint8_t output_id;
    uint8_t state;
    uint16_t pulse_ms;
} fb_io_set;

typedef struct {
    uint8_t acked_type;
    uint16_t acked_seq;
    uint8_t code; /* NACK only */
} fb_ack;

typedef struct {
    uint32_t uptime_ms;
    uint32_t rx_frames;
    uint32_t rx_errors;
    uint32_t tx_frames;
    uint32_t tx_retries;
} fb_heartbeat;

typedef struct {
    uint32_t token;
} fb_time_request;

typedef struct {
    uint32_t token;
    uint32_t device_ms;
} fb_time_reply;

typedef struct {
    uint32_t uptime_ms;
    uint32_t fault_flags;
    uint32_t trigger_overflows;
    uint32_t sample_overruns;
    uint32_t tx_dropped;
} fb_device_status;

typedef struct {
    uint32_t magic;
    uint8_t mode;
} fb_enter_bootloader;

typedef struct {
    uint8_t type;
    uint16_t seq;
    union {
        fb_hello hello;
        fb_sensor_frame sensor;
        fb_trigger trigger;
        fb_result result;
        fb_io_set io_set;
        fb_ack ack; /* ACK and NACK */
        fb_heartbeat heartbeat;
        fb_time_request time_request;
        fb_time_reply time_reply;
        fb_device_status device_status;
        fb_enter_bootloader enter_bootloader;
    } u;
} fb_msg;

/* Why fb_decode_frame rejected a frame (maps 1:1 to the decoder counters). */
typedef enum {
    FB_FRAME_OK = 0,
    FB_FRAME_GARBAGE,
    FB_FRAME_OVERSIZED,
    FB_FRAME_BAD_CRC,
    FB_FRAME_BAD_VERSION,
    FB_FRAME_UNKNOWN_TYPE,
    FB_FRAME_MALFORMED
} fb_frame_result;

/* A CRC-valid but unusable frame; answer with NACK(type, seq, code). */
typedef struct {
    uint8_t type;
    uint16_t seq;
    uint8_t code;
} fb_reject;

/* Element size of a dtype code, 0 if unknown. */
size_t fb_dtype_size(uint8_t dtype);

/* 1 for TRIGGER, RESULT, IO_SET and ENTER_BOOTLOADER. */
int fb_type_is_reliable(uint8_t type);

/* 1 if a rejected frame of this type may be answered with NACK (HELLO, reliable and unknown types);
 * ACK, NACK, HEARTBEAT and the other unreliable types are never answered. */
int fb_type_is_nackable(uint8_t type);

/* Payload size of msg in bytes, or a negative fb_status if a field is invalid. */
long fb_payload_size(const fb_msg *msg);

/*
 * Encode msg as a complete wire frame (COBS + trailing 0x00) into out[0..cap).
 * On success stores the length in *out_len and returns FB_OK.
 * FB_ENCODED_SIZE(payload size) bytes are always enough.
 */
fb_status fb_encode_frame(const fb_msg *msg, uint8_t *out, size_t cap, size_t *out_len);

/*
 * Decode one COBS-decoded frame raw[0..len) (header + payload + CRC) into *msg.
 * Sensor data is not copied: msg->u.sensor.data points into raw.
 * For FB_FRAME_BAD_VERSION / UNKNOWN_TYPE / MALFORMED, *reject is filled for a NACK.
 */
fb_frame_result fb_decode_frame(const uint8_t *raw, size_t len, fb_msg *msg, fb_reject *reject);

#ifdef __cplusplus
}
#endif

#endif /* FB_PROTOCOL_H */
