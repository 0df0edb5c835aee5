/* CRC, COBS and frame encode/decode edge cases. */
#include <string.h>

#include "fb_cobs.h"
#include "fb_crc.h"
#include "fb_protocol.h"
#include "fb_test.h"

static uint8_t out[FB_ENCODED_SIZE(FB_MAX_PAYLOAD)];
static uint8_t raw[FB_MAX_RAW_FRAME + 16];
static uint8_t tensor[FB_MAX_PAYLOAD + 16];

typedef struct {
    const uint8_t *in;
    size_t in_len;
    const uint8_t *enc;
    size_t enc_len;
} cobs_vector;

static void check_cobs_vector(const cobs_vector *v)
{
    uint8_t buf[600];
    size_t n = fb_cobs_encode(v->in, v->in_len, buf, sizeof buf);
    long back;
    CHECK_EQ_INT(n, v->enc_len);
    CHECK(memcmp(buf, v->enc, v->enc_len) == 0);
    CHECK(n <= FB_COBS_MAX_ENCODED(v->in_len));
    back = fb_cobs_decode_inplace(buf, n);
    CHECK_EQ_INT(back, (long)v->in_len);
    CHECK(v->in_len == 0 || memcmp(buf, v->in, v->in_len) == 0);
}

static void test_cobs(void)
{
    static uint8_t seq254[254], enc254[255], seq255a[255], enc255a[257], seq255b[255], enc255b[258];
    static const uint8_t z1[] = {0}, e1[] = {1, 1};
    static const uint8_t z2[] = {0, 0}, e2[] = {1, 1, 1};
    static const uint8_t m1[] = {0x11, 0x22, 0x00, 0x33}, em1[] = {3, 0x11, 0x22, 2, 0x33};
    static const uint8_t m2[] = {0x11, 0x00, 0x00, 0x00}, em2[] = {2, 0x11, 1, 1, 1};
    static const uint8_t e0[] = {1};
    static uint8_t bad1[] = {0x03, 0x11};
    static uint8_t bad2[] = {0x02, 0x00};
    size_t i;
    cobs_vector vectors[8];

    for (i = 0; i < 254; ++i) {
        seq254[i] = (uint8_t)(i + 1);           /* 01..FE */
        enc254[i + 1] = (uint8_t)(i + 1);
        seq255a[i + 1] = (uint8_t)(i + 1);      /* 00 01..FE */
        enc255a[i + 3 - 1] = (uint8_t)(i + 1);
        seq255b[i] = (uint8_t)(i + 1);          /* 01..FF */
        enc255b[i + 1] = (uint8_t)(i + 1);
    }
    enc254[0] = 0xFF;                            /* canonical: no trailing 0x01 */
    seq255a[0] = 0;
    enc255a[0] = 0x01;
    enc255a[1] = 0xFF;
    seq255b[254] = 0xFF;
    enc255b[0] = 0xFF;
    enc255b[255] = 0x02;
    enc255b[256] = 0xFF;

    vectors[0].in = NULL; vectors[0].in_len = 0; vectors[0].enc = e0; vectors[0].enc_len = 1;
    vectors[1].in = z1; vectors[1].in_len = 1; vectors[1].enc = e1; vectors[1].enc_len = 2;
    vectors[2].in = z2; vectors[2].in_len = 2; vectors[2].enc = e2; vectors[2].enc_len = 3;
    vectors[3].in = m1; vectors[3].in_len = 4; vectors[3].enc = em1; vectors[3].enc_len = 5;
    vectors[4].in = m2; vectors[4].in_len = 4; vectors[4].enc = em2; vectors[4].enc_len = 5;
    vectors[5].in = seq254; vectors[5].in_len = 254; vectors[5].enc = enc254; vectors[5].enc_len = 255;
    vectors[6].in = seq255a; vectors[6].in_len = 255; vectors[6].enc = enc255a; vectors[6].enc_len = 256;
    vectors[7].in = seq255b; vectors[7].in_len = 255; vectors[7].enc = enc255b; vectors[7].enc_len = 257;
    for (i = 0; i < 8; ++i) {
        check_cobs_vector(&vectors[i]);
    }
    CHECK_EQ_INT(fb_cobs_decode_inplace(bad1, sizeof bad1), -1);
    CHECK_EQ_INT(fb_cobs_decode_inplace(bad2, sizeof bad2), -1);
    CHECK_EQ_INT(fb_cobs_encode(m1, 4, out, 3), 0); /* does not fit */
}

static size_t make_raw(uint8_t version, uint8_t type, uint16_t length, const uint8_t *payload, size_t n)
{
    uint16_t crc;
    raw[0] = version;
    raw[1] = type;
    raw[2] = 0x34;
    raw[3] = 0x12;
    raw[4] = (uint8_t)(length & 0xFF);
    raw[5] = (uint8_t)(length >> 8);
    memcpy(raw + 6, payload, n);
    crc = fb_crc16(FB_CRC_INIT, raw, 6 + n);
    raw[6 + n] = (uint8_t)(crc & 0xFF);
    raw[7 + n] = (uint8_t)(crc >> 8);
    return 8 + n;
}

static void test_decode_errors(void)
{
    static const uint8_t trigger[] = {1, 0x10, 0x20, 0x30, 0x40};
    static const uint8_t bad_result[] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7};
    static const uint8_t bad_io[] = {0, 2, 0, 0};
    static const uint8_t long_hello[] = {0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 40};
    fb_msg msg;
    fb_reject reject;
    size_t n;

    n = make_raw(1, FB_TYPE_TRIGGER, 5, trigger, 5);
    CHECK_EQ_INT(fb_decode_frame(raw, n, &msg, &reject), FB_FRAME_OK);
    CHECK_EQ_INT(msg.seq, 0x1234);
    CHECK_EQ_INT(msg.u.trigger.timestamp_ms, 0x40302010ul);
    raw[3] ^= 1;
    CHECK_EQ_INT(fb_decode_frame(raw, n, &msg, &reject), FB_FRAME_BAD_CRC);
    CHECK_EQ_INT(fb_decode_frame(raw, 7, &msg, &reject), FB_FRAME_GARBAGE);
    CHECK_EQ_INT(fb_decode_frame(raw, FB_MAX_RAW_FRAME + 1, &msg, &reject), FB_FRAME_OVERSIZED);

    n = make_raw(2, FB_TYPE_TRIGGER, 5, trigger, 5);
    CHECK_EQ_INT(fb_decode_frame(raw, n, &msg, &reject), FB_FRAME_BAD_VERSION);
    CHECK_EQ_INT(reject.code, FB_ERR_UNSUPPORTED_VERSION);
    CHECK_EQ_INT(reject.seq, 0x1234);

    n = make_raw(1, 0x55, 5, trigger, 5);
    CHECK_EQ_INT(fb_decode_frame(raw, n, &msg, &reject), FB_FRAME_UNKNOWN_TYPE);
    CHECK_EQ_INT(reject.code, FB_ERR_UNKNOWN_TYPE);
    CHECK_EQ_INT(reject.type, 0x55);

    n = make_raw(1, FB_TYPE_TRIGGER, 4, trigger, 5); /* length field lies */
    CHECK_EQ_INT(fb_decode_frame(raw, n, &msg, &reject), FB_FRAME_MALFORMED);
    n = make_raw(1, FB_TYPE_TRIGGER, 4, trigger, 4); /* wrong size for the type */
    CHECK_EQ_INT(fb_decode_frame(raw, n, &msg, &reject), FB_FRAME_MALFORMED);
    n = make_raw(1, FB_TYPE_RESULT, 11, bad_result, 11);
    CHECK_EQ_INT(fb_decode_frame(raw, n, &msg, &reject), FB_FRAME_MALFORMED);
    CHECK_EQ_INT(reject.code, FB_ERR_MALFORMED);
    n = make_raw(1, FB_TYPE_IO_SET, 4, bad_io, 4);
    CHECK_EQ_INT(fb_decode_frame(raw, n, &msg, &reject), FB_FRAME_MALFORMED);
    n = make_raw(1, FB_TYPE_HELLO, 14, long_hello, 14);
    CHECK_EQ_INT(fb_decode_frame(raw, n, &msg, &reject), FB_FRAME_MALFORMED);
}

static fb_msg sensor(uint8_t dtype, uint8_t rank, uint16_t dim0, uint16_t data_len)
{
    fb_msg m;
    memset(&m, 0, sizeof m);
    m.type = FB_TYPE_SENSOR_FRAME;
    m.u.sensor.dtype = dtype;
    m.u.sensor.rank = rank;
    m.u.sensor.shape[0] = dim0;
    m.u.sensor.shape[1] = 1;
    m.u.sensor.shape[2] = 1;
    m.u.sensor.shape[3] = 1;
    m.u.sensor.data = tensor;
    m.u.sensor.data_len = data_len;
    return m;
}

static void test_encode_errors(void)
{
    fb_msg m;
    size_t len = 0;
    size_t i;

    m = sensor(FB_DTYPE_F32, 0, 3, 12);
    CHECK_EQ_INT(fb_encode_frame(&m, out, sizeof out, &len), FB_E_INVALID);
    m = sensor(FB_DTYPE_F32, 5, 3, 12);
    CHECK_EQ_INT(fb_encode_frame(&m, out, sizeof out, &len), FB_E_INVALID);
    m = sensor(FB_DTYPE_F32, 1, 3, 11);
    CHECK_EQ_INT(fb_encode_frame(&m, out, sizeof out, &len), FB_E_INVALID);
    m = sensor(9, 1, 3, 12);
    CHECK_EQ_INT(fb_encode_frame(&m, out, sizeof out, &len), FB_E_INVALID);
    m = sensor(FB_DTYPE_U8, 1, 0, 0);
    CHECK_EQ_INT(fb_encode_frame(&m, out, sizeof out, &len), FB_E_INVALID);
    m = sensor(FB_DTYPE_F32, 1, 511, 2044); /* tensor fits, header pushes it over MAX_PAYLOAD */
    CHECK_EQ_INT(fb_encode_frame(&m, out, sizeof out, &len), FB_E_TOO_LARGE);

    /* the largest legal frame: u8 tensor filling MAX_PAYLOAD exactly, no zero bytes */
    for (i = 0; i < sizeof tensor; ++i) {
        tensor[i] = (uint8_t)(i % 255 + 1);
    }
    m = sensor(FB_DTYPE_U8, 1, FB_MAX_PAYLOAD - 9, FB_MAX_PAYLOAD - 9);
    CHECK_EQ_INT(fb_payload_size(&m), FB_MAX_PAYLOAD);
    CHECK_EQ_INT(fb_encode_frame(&m, out, sizeof out, &len), FB_OK);
    CHECK(len <= FB_MAX_ENCODED_FRAME + 1);
    CHECK_EQ_INT(fb_encode_frame(&m, out, FB_ENCODED_SIZE(FB_MAX_PAYLOAD) - 1, &len), FB_E_TOO_LARGE);

    memset(&m, 0, sizeof m);
    m.type = FB_TYPE_HELLO;
    m.u.hello.min_version = 1;
    m.u.hello.max_version = 1;
    memset(m.u.hello.firmware, 'x', FB_FIRMWARE_MAX);
    m.u.hello.firmware[FB_FIRMWARE_MAX] = '\0';
    m.u.hello.max_payload = FB_MIN_MAX_PAYLOAD - 1u; /* 1.1: below the minimum max_payload */
    CHECK_EQ_INT(fb_encode_frame(&m, out, sizeof out, &len), FB_E_INVALID);
    m.u.hello.max_payload = FB_MIN_MAX_PAYLOAD;
    CHECK_EQ_INT(fb_encode_frame(&m, out, sizeof out, &len), FB_OK);
    m.u.hello.firmware[0] = '\n';
    CHECK_EQ_INT(fb_encode_frame(&m, out, sizeof out, &len), FB_E_INVALID);
    m.u.hello.firmware[0] = 'x';
    m.u.hello.min_version = 2;
    CHECK_EQ_INT(fb_encode_frame(&m, out, sizeof out, &len), FB_E_INVALID);

    memset(&m, 0, sizeof m);
    m.type = FB_TYPE_RESULT;
    m.u.result.score_permille = 1001;
    CHECK_EQ_INT(fb_encode_frame(&m, out, sizeof out, &len), FB_E_INVALID);
    m.u.result.score_permille = 1000;
    m.u.result.verdict = 2;
    CHECK_EQ_INT(fb_encode_frame(&m, out, sizeof out, &len), FB_E_INVALID);
    m.type = FB_TYPE_IO_SET;
    m.u.io_set.state = 2;
    CHECK_EQ_INT(fb_encode_frame(&m, out, sizeof out, &len), FB_E_INVALID);
    m.type = 0x99;
    CHECK_EQ_INT(fb_encode_frame(&m, out, sizeof out, &len), FB_E_INVALID);
}

void test_codec(void)
{
    static const uint8_t check[] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
    CHECK_EQ_INT(fb_crc16(FB_CRC_INIT, check, sizeof check), 0x29B1);
    CHECK_EQ_INT(fb_crc16(FB_CRC_INIT, check, 0), 0xFFFF);
    CHECK_EQ_INT(FB_MAX_ENCODED_FRAME, 2065);
    CHECK_EQ_INT(fb_dtype_size(FB_DTYPE_F32), 4);
    CHECK_EQ_INT(fb_dtype_size(0), 0);
    test_cobs();
    test_decode_errors();
    test_encode_errors();
}
