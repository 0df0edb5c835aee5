#include "fb_protocol.h"

#include "fb_crc.h"

#define HELLO_FIXED 14u
#define HELLO_EXTENSION 9u
#define SENSOR_FIXED 7u

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)(v >> 24);
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | ((uint16_t)p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static int16_t to_i16(uint16_t v)
{
    /* portable two's complement conversion (no implementation-defined cast) */
    return v >= 0x8000u ? (int16_t)((long)v - 65536L) : (int16_t)v;
}

size_t fb_dtype_size(uint8_t dtype)
{
    switch (dtype) {
    case FB_DTYPE_U8:
    case FB_DTYPE_I8:
        return 1;
    case FB_DTYPE_I16:
    case FB_DTYPE_U16:
        return 2;
    case FB_DTYPE_I32:
    case FB_DTYPE_F32:
        return 4;
    default:
        return 0;
    }
}

int fb_type_is_reliable(uint8_t type)
{
    return type == FB_TYPE_TRIGGER || type == FB_TYPE_RESULT || type == FB_TYPE_IO_SET ||
           type == FB_TYPE_ENTER_BOOTLOADER;
}

int fb_type_is_nackable(uint8_t type)
{
    switch (type) {
    case FB_TYPE_ACK:
    case FB_TYPE_NACK:
    case FB_TYPE_HEARTBEAT:
    case FB_TYPE_TIME_REQUEST:
    case FB_TYPE_TIME_REPLY:
    case FB_TYPE_SENSOR_FRAME:
    case FB_TYPE_DEVICE_STATUS:
        return 0;
    default:
        return 1; /* HELLO, reliable types, unknown types */
    }
}

/* Length of a printable-ASCII firmware string, or -1 if too long / not printable. */
static long firmware_len(const char *text)
{
    long n = 0;
    while (n <= (long)FB_FIRMWARE_MAX) {
        unsigned char c = (unsigned char)text[n];
        if (c == 0) {
            return n;
        }
        if (c < 0x20u || c > 0x7Eu) {
            return -1;
        }
        ++n;
    }
    return -1;
}

/* Expected tensor data size, or -1 if dtype/rank/shape are invalid or exceed the payload limit. */
static long tensor_bytes(const fb_sensor_frame *s)
{
    unsigned long total = fb_dtype_size(s->dtype);
    unsigned i;
    if (total == 0 || s->rank < 1 || s->rank > FB_MAX_RANK) {
        return -1;
    }
    for (i = 0; i < s->rank; ++i) {
        if (s->shape[i] == 0) {
            return -1;
        }
        total *= s->shape[i];
        if (total > FB_MAX_PAYLOAD) {
            return -1;
        }
    }
    return (long)total;
}

long fb_payload_size(const fb_msg *msg)
{
    long n;
    switch (msg->type) {
    case FB_TYPE_HELLO:
        n = firmware_len(msg->u.hello.firmware);
        if (n < 0 || msg->u.hello.min_version > msg->u.hello.max_version ||
            msg->u.hello.max_payload < FB_MIN_MAX_PAYLOAD) {
            return FB_E_INVALID;
        }
        return (long)HELLO_FIXED + n + (msg->u.hello.has_extension ? (long)HELLO_EXTENSION : 0L);
    case FB_TYPE_SENSOR_FRAME:
        n = tensor_bytes(&msg->u.sensor);
        if (n < 0 || n != (long)msg->u.sensor.data_len || (n > 0 && msg->u.sensor.data == NULL)) {
            return FB_E_INVALID;
        }
        n += (long)SENSOR_FIXED + 2L * msg->u.sensor.rank;
        return n > (long)FB_MAX_PAYLOAD ? FB_E_TOO_LARGE : n;
    case FB_TYPE_TRIGGER:
        return 5;
    case FB_TYPE_RESULT:
        if (msg->u.result.score_permille > 1000u || msg->u.result.verdict > FB_VERDICT_FAIL) {
            return FB_E_INVALID;
        }
        return 11;
    case FB_TYPE_IO_SET:
        return msg->u.io_set.state > 1u ? FB_E_INVALID : 4;
    case FB_TYPE_ACK:
        return 3;
    case FB_TYPE_NACK:
        return 4;
    case FB_TYPE_HEARTBEAT:
    case FB_TYPE_DEVICE_STATUS:
        return 20;
    case FB_TYPE_TIME_REQUEST:
        return 4;
    case FB_TYPE_TIME_REPLY:
        return 8;
    case FB_TYPE_ENTER_BOOTLOADER:
        return 5;
    default:
        return FB_E_INVALID;
    }
}

static void write_payload(const fb_msg *msg, uint8_t *p)
{
    unsigned i;
    switch (msg->type) {
    case FB_TYPE_HELLO: {
        const fb_hello *h = &msg->u.hello;
        long n = firmware_len(h->firmware);
        p[0] = h->flags;
        p[1] = h->min_version;
        p[2] = h->max_version;
        put_u32(p + 3, h->device_id);
        put_u32(p + 7, h->capabilities);
        put_u16(p + 11, h->max_payload);
        p[13] = (uint8_t)n;
        for (i = 0; i < (unsigned)n; ++i) {
            p[HELLO_FIXED + i] = (uint8_t)h->firmware[i];
        }
        if (h->has_extension) {
            uint8_t *x = p + HELLO_FIXED + (unsigned)n;
            x[0] = h->minor_version;
            put_u32(x + 1, h->schema_hash);
            put_u32(x + 5, h->boot_id);
        }
        break;
    }
    case FB_TYPE_SENSOR_FRAME: {
        const fb_sensor_frame *s = &msg->u.sensor;
        uint8_t *data;
        p[0] = s->sensor_id;
        put_u32(p + 1, s->timestamp_ms);
        p[5] = s->dtype;
        p[6] = s->rank;
        for (i = 0; i < s->rank; ++i) {
            put_u16(p + SENSOR_FIXED + 2u * i, s->shape[i]);
        }
        data = p + SENSOR_FIXED + 2u * s->rank;
        for (i = 0; i < s->data_len; ++i) {
            data[i] = s->data[i];
        }
        break;
    }
    case FB_TYPE_TRIGGER:
        p[0] = msg->u.trigger.input_id;
        put_u32(p + 1, msg->u.trigger.timestamp_ms);
        break;
    case FB_TYPE_RESULT:
        put_u32(p, msg->u.result.result_id);
        put_u16(p + 4, msg->u.result.ref_seq);
        put_u16(p + 6, (uint16_t)msg->u.result.label);
        put_u16(p + 8, msg->u.result.score_permille);
        p[10] = msg->u.result.verdict;
        break;
    case FB_TYPE_IO_SET:
        p[0] = msg->u.io_set.output_id;
        p[1] = msg->u.io_set.state;
        put_u16(p + 2, msg->u.io_set.pulse_ms);
        break;
    case FB_TYPE_ACK:
    case FB_TYPE_NACK:
        p[0] = msg->u.ack.acked_type;
        put_u16(p + 1, msg->u.ack.acked_seq);
        if (msg->type == FB_TYPE_NACK) {
            p[3] = msg->u.ack.code;
        }
        break;
    case FB_TYPE_HEARTBEAT:
        put_u32(p, msg->u.heartbeat.uptime_ms);
        put_u32(p + 4, msg->u.heartbeat.rx_frames);
        put_u32(p + 8, msg->u.heartbeat.rx_errors);
        put_u32(p + 12, msg->u.heartbeat.tx_frames);
        put_u32(p + 16, msg->u.heartbeat.tx_retries);
        break;
    case FB_TYPE_TIME_REQUEST:
        put_u32(p, msg->u.time_request.token);
        break;
    case FB_TYPE_TIME_REPLY:
        put_u32(p, msg->u.time_reply.token);
        put_u32(p + 4, msg->u.time_reply.device_ms);
        break;
    case FB_TYPE_DEVICE_STATUS:
        put_u32(p, msg->u.device_status.uptime_ms);
        put_u32(p + 4, msg->u.device_status.fault_flags);
        put_u32(p + 8, msg->u.device_status.trigger_overflows);
        put_u32(p + 12, msg->u.device_status.sample_overruns);
        put_u32(p + 16, msg->u.device_status.tx_dropped);
        break;
    case FB_TYPE_ENTER_BOOTLOADER:
        put_u32(p, msg->u.enter_bootloader.magic);
        p[4] = msg->u.enter_bootloader.mode;
        break;
    default:
        break;
    }
}

fb_status fb_encode_frame(const fb_msg *msg, uint8_t *out, size_t cap, size_t *out_len)
{
    long payload = fb_payload_size(msg);
    size_t raw_len;
    size_t need;
    size_t encoded;
    uint8_t *raw;
    uint16_t crc;

    if (payload < 0) {
        return (fb_status)payload;
    }
    raw_len = FB_HEADER_SIZE + (size_t)payload + FB_CRC_SIZE;
    need = FB_COBS_MAX_ENCODED(raw_len) + 1u;
    if (cap < need) {
        return FB_E_TOO_LARGE;
    }
    /* Build the raw frame at the end of the worst-case area and COBS-encode it forward in place. */
    raw = out + (need - 1u - raw_len);
    raw[0] = FB_PROTOCOL_VERSION;
    raw[1] = msg->type;
    put_u16(raw + 2, msg->seq);
    put_u16(raw + 4, (uint16_t)payload);
    write_payload(msg, raw + FB_HEADER_SIZE);
    crc = fb_crc16(FB_CRC_INIT, raw, FB_HEADER_SIZE + (size_t)payload);
    put_u16(raw + FB_HEADER_SIZE + payload, crc);
    encoded = fb_cobs_encode(raw, raw_len, out, need - 1u);
    if (encoded == 0) {
        return FB_E_TOO_LARGE;
    }
    out[encoded] = 0;
    *out_len = encoded + 1u;
    return FB_OK;
}

static int parse_hello(const uint8_t *p, size_t len, fb_hello *h)
{
    size_t n;
    size_t i;
    if (len < HELLO_FIXED) {
        return 0;
    }
    n = p[13];
    if (n > FB_FIRMWARE_MAX || HELLO_FIXED + n > len) {
        return 0; /* trailing bytes beyond the string are allowed (future versions) */
    }
    h->flags = p[0];
    h->min_version = p[1];
    h->max_version = p[2];
    h->device_id = get_u32(p + 3);
    h->capabilities = get_u32(p + 7);
    h->max_payload = get_u16(p + 11);
    for (i = 0; i < n; ++i) {
        uint8_t c = p[HELLO_FIXED + i];
        if (c < 0x20u || c > 0x7Eu) {
            return 0;
        }
        h->firmware[i] = (char)c;
    }
    h->firmware[n] = '\0';
    /* 1.1 extension; a shorter tail is a 1.0 HELLO, bytes after it belong to later versions */
    h->has_extension = (uint8_t)(len >= HELLO_FIXED + n + HELLO_EXTENSION);
    h->minor_version = h->has_extension ? p[HELLO_FIXED + n] : 0u;
    h->schema_hash = h->has_extension ? get_u32(p + HELLO_FIXED + n + 1u) : 0u;
    h->boot_id = h->has_extension ? get_u32(p + HELLO_FIXED + n + 5u) : 0u;
    return h->min_version <= h->max_version && h->max_payload >= FB_MIN_MAX_PAYLOAD;
}

static int parse_sensor(const uint8_t *p, size_t len, fb_sensor_frame *s)
{
    size_t start;
    unsigned i;
    long expected;
    if (len < SENSOR_FIXED) {
        return 0;
    }
    s->sensor_id = p[0];
    s->timestamp_ms = get_u32(p + 1);
    s->dtype = p[5];
    s->rank = p[6];
    if (s->rank < 1 || s->rank > FB_MAX_RANK) {
        return 0;
    }
    start = SENSOR_FIXED + 2u * s->rank;
    if (start > len) {
        return 0;
    }
    for (i = 0; i < FB_MAX_RANK; ++i) {
        s->shape[i] = i < s->rank ? get_u16(p + SENSOR_FIXED + 2u * i) : 0u;
    }
    expected = tensor_bytes(s);
    if (expected < 0 || (size_t)expected != len - start) {
        return 0;
    }
    s->data = p + start;
    s->data_len = (uint16_t)expected;
    return 1;
}

static int parse_payload(uint8_t type, const uint8_t *p, size_t len, fb_msg *msg)
{
    switch (type) {
    case FB_TYPE_HELLO:
        return parse_hello(p, len, &msg->u.hello);
    case FB_TYPE_SENSOR_FRAME:
        return parse_sensor(p, len, &msg->u.sensor);
    case FB_TYPE_TRIGGER:
        msg->u.trigger.input_id = len == 5 ? p[0] : 0u;
        msg->u.trigger.timestamp_ms = len == 5 ? get_u32(p + 1) : 0u;
        return len == 5;
    case FB_TYPE_RESULT:
        if (len != 11) {
            return 0;
        }
        msg->u.result.result_id = get_u32(p);
        msg->u.result.ref_seq = get_u16(p + 4);
        msg->u.result.label = to_i16(get_u16(p + 6));
        msg->u.result.score_permille = get_u16(p + 8);
        msg->u.result.verdict = p[10];
        return msg->u.result.score_permille <= 1000u && msg->u.result.verdict <= FB_VERDICT_FAIL;
    case FB_TYPE_IO_SET:
        if (len != 4) {
            return 0;
        }
        msg->u.io_set.output_id = p[0];
        msg->u.io_set.state = p[1];
        msg->u.io_set.pulse_ms = get_u16(p + 2);
        return p[1] <= 1u;
    case FB_TYPE_ACK:
    case FB_TYPE_NACK:
        if (len != (type == FB_TYPE_ACK ? 3u : 4u)) {
            return 0;
        }
        msg->u.ack.acked_type = p[0];
        msg->u.ack.acked_seq = get_u16(p + 1);
        msg->u.ack.code = type == FB_TYPE_NACK ? p[3] : 0u;
        return 1;
    case FB_TYPE_HEARTBEAT:
        if (len != 20) {
            return 0;
        }
        msg->u.heartbeat.uptime_ms = get_u32(p);
        msg->u.heartbeat.rx_frames = get_u32(p + 4);
        msg->u.heartbeat.rx_errors = get_u32(p + 8);
        msg->u.heartbeat.tx_frames = get_u32(p + 12);
        msg->u.heartbeat.tx_retries = get_u32(p + 16);
        return 1;
    case FB_TYPE_TIME_REQUEST:
        msg->u.time_request.token = len == 4 ? get_u32(p) : 0u;
        return len == 4;
    case FB_TYPE_TIME_REPLY:
        if (len != 8) {
            return 0;
        }
        msg->u.time_reply.token = get_u32(p);
        msg->u.time_reply.device_ms = get_u32(p + 4);
        return 1;
    case FB_TYPE_DEVICE_STATUS:
        if (len != 20) {
            return 0;
        }
        msg->u.device_status.uptime_ms = get_u32(p);
        msg->u.device_status.fault_flags = get_u32(p + 4);
        msg->u.device_status.trigger_overflows = get_u32(p + 8);
        msg->u.device_status.sample_overruns = get_u32(p + 12);
        msg->u.device_status.tx_dropped = get_u32(p + 16);
        return 1;
    case FB_TYPE_ENTER_BOOTLOADER:
        if (len != 5) {
            return 0;
        }
        msg->u.enter_bootloader.magic = get_u32(p);
        msg->u.enter_bootloader.mode = p[4];
        return 1;
    default:
        return -1;
    }
}

fb_frame_result fb_decode_frame(const uint8_t *raw, size_t len, fb_msg *msg, fb_reject *reject)
{
    size_t body;
    uint16_t length;
    int parsed;

    if (len < FB_HEADER_SIZE + FB_CRC_SIZE) {
        return FB_FRAME_GARBAGE;
    }
    if (len > FB_MAX_RAW_FRAME) {
        return FB_FRAME_OVERSIZED;
    }
    body = len - FB_CRC_SIZE;
    if (fb_crc16(FB_CRC_INIT, raw, body) != get_u16(raw + body)) {
        return FB_FRAME_BAD_CRC;
    }
    msg->type = raw[1];
    msg->seq = get_u16(raw + 2);
    length = get_u16(raw + 4);
    reject->type = msg->type;
    reject->seq = msg->seq;
    if (length != body - FB_HEADER_SIZE) {
        reject->code = FB_ERR_MALFORMED;
        return FB_FRAME_MALFORMED;
    }
    if (raw[0] != FB_PROTOCOL_VERSION) {
        reject->code = FB_ERR_UNSUPPORTED_VERSION;
        return FB_FRAME_BAD_VERSION;
    }
    parsed = parse_payload(msg->type, raw + FB_HEADER_SIZE, length, msg);
    if (parsed < 0) {
        reject->code = FB_ERR_UNKNOWN_TYPE;
        return FB_FRAME_UNKNOWN_TYPE;
    }
    if (parsed == 0) {
        reject->code = FB_ERR_MALFORMED;
        return FB_FRAME_MALFORMED;
    }
    return FB_FRAME_OK;
}
