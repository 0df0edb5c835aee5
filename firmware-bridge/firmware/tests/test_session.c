/* Session core: two sessions over an in-memory link with a fake clock. */
#include <string.h>

#include "fb_crc.h"
#include "fb_session.h"
#include "fb_test.h"

typedef struct {
    const char *name;
    fb_session s;
    uint8_t wire[16384]; /* bytes written, not yet delivered to the peer */
    size_t wire_len;
    int drop_next;   /* drop this many upcoming frames */
    int drop_all;    /* cable cut */
    int frames_written;
    int by_type[256];      /* messages received, by type */
    uint8_t reply_code;    /* what on_message answers to reliable messages */
    int busy_replies;      /* answer BUSY this many times first */
    fb_msg last;
    uint8_t last_data[1600];
    int deliveries;
    fb_delivery_status last_status;
    uint8_t last_code;
} node;

static uint32_t clock_ms = 1000;
static node host;
static node dev;

static uint32_t now_cb(void *ctx)
{
    (void)ctx;
    return clock_ms;
}

static int write_cb(void *ctx, const uint8_t *data, size_t len)
{
    node *n = (node *)ctx;
    if (len > 1) {
        n->frames_written++;
        if (n->drop_all) {
            return 0; /* the cable swallows it */
        }
        if (n->drop_next > 0) {
            n->drop_next--;
            return 0;
        }
    }
    if (n->wire_len + len > sizeof n->wire) {
        return -1;
    }
    memcpy(n->wire + n->wire_len, data, len);
    n->wire_len += len;
    return 0;
}

static uint8_t message_cb(void *ctx, const fb_msg *msg)
{
    node *n = (node *)ctx;
    n->last = *msg;
    if (msg->type == FB_TYPE_SENSOR_FRAME && msg->u.sensor.data_len <= sizeof n->last_data) {
        memcpy(n->last_data, msg->u.sensor.data, msg->u.sensor.data_len);
    }
    if (fb_type_is_reliable(msg->type) && n->busy_replies > 0) {
        n->busy_replies--;
        return FB_ERR_BUSY;
    }
    n->by_type[msg->type]++;
    return n->reply_code;
}

static void delivery_cb(void *ctx, uint8_t type, uint16_t seq, fb_delivery_status status, uint8_t code)
{
    node *n = (node *)ctx;
    (void)type;
    (void)seq;
    n->deliveries++;
    n->last_status = status;
    n->last_code = code;
}

static void setup_node(node *n, const char *name, uint32_t device_id, uint16_t initial_seq)
{
    fb_session_config cfg;
    fb_session_io io;
    memset(n, 0, sizeof *n);
    n->name = name;
    fb_session_default_config(&cfg);
    cfg.device_id = device_id;
    cfg.initial_seq = initial_seq;
    io.ctx = n;
    io.now_ms = now_cb;
    io.write = write_cb;
    io.on_message = message_cb;
    io.on_delivery = delivery_cb;
    io.on_state = NULL;
    io.on_time_reply = NULL;
    fb_session_init(&n->s, &cfg, &io);
}

static void deliver(node *from, node *to)
{
    static uint8_t chunk[sizeof from->wire];
    size_t len = from->wire_len;
    memcpy(chunk, from->wire, len);
    from->wire_len = 0;
    fb_session_rx(&to->s, chunk, len);
}

static void pump(void)
{
    int guard = 0;
    while ((host.wire_len > 0 || dev.wire_len > 0) && guard++ < 100) {
        deliver(&host, &dev);
        deliver(&dev, &host);
    }
}

static void advance(uint32_t ms)
{
    uint32_t t;
    for (t = 0; t < ms; t += 10) {
        clock_ms += 10;
        fb_session_poll(&host.s);
        fb_session_poll(&dev.s);
        pump();
    }
}

static void connect_pair(void)
{
    setup_node(&host, "host", 0, 100);
    setup_node(&dev, "dev", 0x5EED0001ul, 0xFFFE);
    fb_session_start(&host.s);
    fb_session_start(&dev.s);
    pump();
}

static fb_msg trigger(uint8_t input)
{
    fb_msg m;
    memset(&m, 0, sizeof m);
    m.type = FB_TYPE_TRIGGER;
    m.u.trigger.input_id = input;
    m.u.trigger.timestamp_ms = clock_ms;
    return m;
}

static void test_handshake(void)
{
    connect_pair();
    CHECK(fb_session_is_ready(&host.s));
    CHECK(fb_session_is_ready(&dev.s));
    CHECK_EQ_INT(host.s.stats.handshakes, 1);
    CHECK_EQ_INT(host.s.peer.device_id, 0x5EED0001ul);
    CHECK_EQ_INT(dev.s.peer.device_id, 0);
    CHECK_EQ_INT(strcmp(host.s.peer.firmware, "fb-ref/1.1.0"), 0);
    CHECK_EQ_INT(dev.s.next_seq < 10, 1); /* started at 0xFFFE: wrapped */
}

static void test_reliable_and_retries(void)
{
    fb_msg m;
    connect_pair();

    m = trigger(1);
    CHECK_EQ_INT(fb_session_send(&dev.s, &m), FB_OK);
    CHECK(fb_session_in_flight(&dev.s, FB_TYPE_TRIGGER));
    m = trigger(2);
    CHECK_EQ_INT(fb_session_send(&dev.s, &m), FB_E_BUSY);
    pump();
    CHECK_EQ_INT(host.by_type[FB_TYPE_TRIGGER], 1);
    CHECK_EQ_INT(dev.last_status, FB_DELIVERY_ACKED);
    CHECK(!fb_session_in_flight(&dev.s, FB_TYPE_TRIGGER));

    /* ACK lost: retransmission is recognised as duplicate, re-ACKed, not delivered twice */
    host.drop_next = 1;
    m = trigger(3);
    CHECK_EQ_INT(fb_session_send(&dev.s, &m), FB_OK);
    pump();
    CHECK_EQ_INT(host.by_type[FB_TYPE_TRIGGER], 2);
    CHECK(fb_session_in_flight(&dev.s, FB_TYPE_TRIGGER));
    advance(310);
    CHECK_EQ_INT(host.s.stats.duplicates, 1);
    CHECK_EQ_INT(host.by_type[FB_TYPE_TRIGGER], 2);
    CHECK_EQ_INT(dev.deliveries, 2);
    CHECK_EQ_INT(dev.last_status, FB_DELIVERY_ACKED);
    CHECK_EQ_INT(dev.s.stats.retries, 1);

    /* request lost */
    dev.drop_next = 1;
    m = trigger(4);
    CHECK_EQ_INT(fb_session_send(&dev.s, &m), FB_OK);
    pump();
    CHECK_EQ_INT(host.by_type[FB_TYPE_TRIGGER], 2);
    advance(310);
    CHECK_EQ_INT(host.by_type[FB_TYPE_TRIGGER], 3);
    CHECK_EQ_INT(dev.deliveries, 3);

    /* everything lost: 1 + 3 transmissions, then TIMED_OUT */
    dev.drop_all = 1;
    dev.frames_written = 0;
    m = trigger(5);
    CHECK_EQ_INT(fb_session_send(&dev.s, &m), FB_OK);
    advance(1250);
    CHECK_EQ_INT(dev.last_status, FB_DELIVERY_TIMED_OUT);
    CHECK_EQ_INT(dev.s.stats.timeouts, 1);
    CHECK(dev.frames_written >= 4);
    dev.drop_all = 0;
}

static void test_nack(void)
{
    fb_msg m;
    connect_pair();
    memset(&m, 0, sizeof m);
    m.type = FB_TYPE_IO_SET;
    m.u.io_set.output_id = 9;
    m.u.io_set.state = 1;
    dev.reply_code = FB_ERR_INVALID_ARGUMENT;
    CHECK_EQ_INT(fb_session_send(&host.s, &m), FB_OK);
    pump();
    CHECK_EQ_INT(host.last_status, FB_DELIVERY_NACKED);
    CHECK_EQ_INT(host.last_code, FB_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(dev.s.stats.nacks_tx, 1);
    CHECK_EQ_INT(dev.s.stats.delivered, 0);

    /* BUSY is retryable: the sender keeps its schedule and succeeds on the retry */
    dev.reply_code = FB_ERR_NONE;
    dev.busy_replies = 1;
    memset(&m, 0, sizeof m);
    m.type = FB_TYPE_RESULT;
    m.u.result.result_id = 7;
    m.u.result.score_permille = 900;
    m.u.result.verdict = FB_VERDICT_FAIL;
    CHECK_EQ_INT(fb_session_send(&host.s, &m), FB_OK);
    pump();
    CHECK(fb_session_in_flight(&host.s, FB_TYPE_RESULT));
    advance(310);
    CHECK_EQ_INT(host.last_status, FB_DELIVERY_ACKED);
    CHECK_EQ_INT(dev.by_type[FB_TYPE_RESULT], 1);
    CHECK_EQ_INT(dev.last.u.result.result_id, 7);
}

static void test_reject_unknown_type(void)
{
    /* version 1, type 0x55, seq 0x0001, empty payload, valid CRC */
    static const uint8_t frame_raw[] = {0x01, 0x55, 0x01, 0x00, 0x00, 0x00};
    uint8_t wire[16];
    uint8_t raw[8];
    uint16_t crc;
    size_t n;
    connect_pair();
    memcpy(raw, frame_raw, 6);
    crc = fb_crc16(FB_CRC_INIT, raw, 6);
    raw[6] = (uint8_t)(crc & 0xFF);
    raw[7] = (uint8_t)(crc >> 8);
    n = fb_cobs_encode(raw, 8, wire, sizeof wire);
    wire[n++] = 0;
    fb_session_rx(&host.s, wire, n);
    CHECK_EQ_INT(host.s.decoder.stats.unknown_type, 1);
    CHECK_EQ_INT(host.s.stats.nacks_tx, 1);
    pump();
    CHECK_EQ_INT(dev.s.stats.nacks_rx, 1);
    CHECK_EQ_INT(dev.s.stats.stray_acks, 1);
}

static void test_sensor_frame(void)
{
    static uint8_t data[128 * 3 * 4];
    fb_msg m;
    size_t i;
    connect_pair();
    for (i = 0; i < sizeof data; ++i) {
        data[i] = (uint8_t)(i * 7);
    }
    memset(&m, 0, sizeof m);
    m.type = FB_TYPE_SENSOR_FRAME;
    m.u.sensor.dtype = FB_DTYPE_F32;
    m.u.sensor.rank = 2;
    m.u.sensor.shape[0] = 128;
    m.u.sensor.shape[1] = 3;
    m.u.sensor.data = data;
    m.u.sensor.data_len = sizeof data;
    CHECK_EQ_INT(fb_session_send(&dev.s, &m), FB_OK);
    pump();
    CHECK_EQ_INT(host.by_type[FB_TYPE_SENSOR_FRAME], 1);
    CHECK_EQ_INT(host.last.u.sensor.data_len, sizeof data);
    CHECK(memcmp(host.last_data, data, sizeof data) == 0);
    m.type = FB_TYPE_ACK;
    CHECK_EQ_INT(fb_session_send(&dev.s, &m), FB_E_INVALID);
}

static void test_heartbeat_and_link_loss(void)
{
    connect_pair();
    advance(1000);
    CHECK(host.s.peer_heartbeat.uptime_ms >= 990);
    CHECK(dev.s.peer_heartbeat.tx_frames > 0);
    CHECK(fb_session_is_ready(&host.s));

    host.drop_all = dev.drop_all = 1;
    advance(3400);
    CHECK(fb_session_is_ready(&host.s));
    advance(200);
    CHECK_EQ_INT(host.s.state, FB_SESSION_LINK_LOST);
    CHECK_EQ_INT(dev.s.state, FB_SESSION_LINK_LOST);
    CHECK_EQ_INT(host.s.stats.link_losses, 1);

    host.drop_all = dev.drop_all = 0;
    advance(600);
    CHECK(fb_session_is_ready(&host.s));
    CHECK(fb_session_is_ready(&dev.s));
    CHECK_EQ_INT(host.s.stats.handshakes, 2);
}

static void test_duplicate_memory_reset_by_hello(void)
{
    fb_msg m;
    uint16_t seq;
    connect_pair();
    m = trigger(1);
    (void)fb_session_send(&dev.s, &m);
    pump();
    seq = m.seq;
    CHECK_EQ_INT(host.by_type[FB_TYPE_TRIGGER], 1);

    /* device reboots and happens to reuse the sequence number */
    {
        fb_session_config cfg = dev.s.cfg;
        fb_session_io io = dev.s.io;
        cfg.initial_seq = (uint16_t)(seq - 1); /* its boot HELLO takes seq - 1, the trigger seq */
        fb_session_init(&dev.s, &cfg, &io);
    }
    fb_session_start(&dev.s);
    pump();
    m = trigger(1);
    (void)fb_session_send(&dev.s, &m);
    pump();
    CHECK_EQ_INT(host.by_type[FB_TYPE_TRIGGER], 2);
    CHECK_EQ_INT(host.s.stats.duplicates, 0);
}

/* ---- protocol 1.1 rules ---------------------------------------------------------------------- */

static fb_time_reply last_time_reply;
static int time_replies;

static void time_reply_cb(void *ctx, const fb_time_reply *reply, uint32_t now)
{
    (void)ctx;
    (void)now;
    last_time_reply = *reply;
    time_replies++;
}

/* Feed `to` a CRC-valid frame with any version/type/payload (optionally only its first `cut` bytes). */
static void inject(node *to, uint8_t version, uint8_t type, uint16_t seq, const uint8_t *payload, size_t len,
                   size_t cut)
{
    uint8_t raw[64];
    uint8_t wire[80];
    uint16_t crc;
    size_t n;
    raw[0] = version;
    raw[1] = type;
    raw[2] = (uint8_t)(seq & 0xFF);
    raw[3] = (uint8_t)(seq >> 8);
    raw[4] = (uint8_t)len;
    raw[5] = 0;
    memcpy(raw + 6, payload, len);
    crc = fb_crc16(FB_CRC_INIT, raw, 6 + len);
    raw[6 + len] = (uint8_t)(crc & 0xFF);
    raw[7 + len] = (uint8_t)(crc >> 8);
    n = fb_cobs_encode(raw, 8 + len, wire, sizeof wire);
    wire[n++] = 0;
    fb_session_rx(&to->s, wire, cut > 0 && cut < n ? cut : n);
}

static void test_never_answer_ack_nack_heartbeat(void)
{
    static const uint8_t short_payload[2] = {0x20, 0x01};
    uint32_t nacks;
    connect_pair();
    nacks = host.s.stats.nacks_tx;
    inject(&host, 1, FB_TYPE_ACK, 1, short_payload, 2, 0);       /* malformed ACK */
    inject(&host, 1, FB_TYPE_NACK, 2, short_payload, 2, 0);      /* malformed NACK */
    inject(&host, 1, FB_TYPE_HEARTBEAT, 3, short_payload, 2, 0); /* malformed HEARTBEAT */
    inject(&host, 2, FB_TYPE_ACK, 4, short_payload, 2, 0);       /* ACK of an unknown version */
    pump();
    CHECK_EQ_INT(host.s.stats.nacks_tx, nacks);
    CHECK_EQ_INT(host.s.stats.nacks_suppressed, 4);
    CHECK_EQ_INT(dev.s.stats.nacks_rx, 0);
}

static void test_bad_version_nacked_once_per_burst(void)
{
    static const uint8_t payload[5] = {1, 0, 0, 0, 0};
    uint16_t i;
    connect_pair();
    for (i = 0; i < 20; ++i) {
        inject(&host, 2, FB_TYPE_TRIGGER, (uint16_t)(500 + i), payload, 5, 0);
    }
    pump();
    CHECK_EQ_INT(host.s.decoder.stats.bad_version, 20);
    CHECK_EQ_INT(host.s.stats.nacks_tx, 1);
    CHECK_EQ_INT(dev.s.stats.nacks_rx, 1);
    advance(1100); /* heartbeats (valid frames) arrived and the burst interval passed */
    inject(&host, 2, FB_TYPE_TRIGGER, 600, payload, 5, 0);
    CHECK_EQ_INT(host.s.stats.nacks_tx, 2);
}

static void test_sequence_wrap_is_not_a_duplicate(void)
{
    fb_msg m;
    fb_msg hb;
    uint16_t seq;
    uint32_t frames = 0;
    connect_pair();
    m = trigger(1);
    (void)fb_session_send(&dev.s, &m);
    pump();
    seq = m.seq;
    CHECK_EQ_INT(host.by_type[FB_TYPE_TRIGGER], 1);
    /* every other frame type until the device's counter is back at the trigger's seq; at 921600 baud
     * 65,535 heartbeats take >= 2.3 s on the wire */
    memset(&hb, 0, sizeof hb);
    hb.type = FB_TYPE_HEARTBEAT;
    while (dev.s.next_seq != seq) {
        (void)fb_session_send(&dev.s, &hb);
        if (++frames % 1024u == 0) {
            clock_ms += 36;
            fb_session_poll(&host.s);
            pump();
        }
    }
    pump();
    CHECK_EQ_INT(frames, 65534); /* + the trigger: the full cycle of 65,535 (0xFFFF is REF_SEQ_NONE) */
    m = trigger(1);
    (void)fb_session_send(&dev.s, &m);
    pump();
    CHECK_EQ_INT(m.seq, seq);
    CHECK_EQ_INT(host.by_type[FB_TYPE_TRIGGER], 2); /* applied, not taken for a retransmission */
    CHECK_EQ_INT(host.s.stats.duplicates, 0);
}

static void test_seq_never_ref_seq_none(void)
{
    fb_msg hb;
    connect_pair();
    memset(&hb, 0, sizeof hb);
    hb.type = FB_TYPE_HEARTBEAT;
    dev.s.next_seq = 0xFFFE;
    (void)fb_session_send(&dev.s, &hb);
    CHECK_EQ_INT(hb.seq, 0xFFFE);
    (void)fb_session_send(&dev.s, &hb);
    CHECK_EQ_INT(hb.seq, 0);
}

static void test_schema_hash_mismatch_refused(void)
{
    uint8_t p[40];
    connect_pair();
    memset(p, 0, sizeof p);
    p[0] = FB_HELLO_REPLY_REQUESTED;
    p[1] = p[2] = 1;
    p[7] = 0x1F;       /* capabilities */
    p[11] = 0x80;      /* max_payload 128 */
    p[13] = 0;         /* no firmware string */
    p[14] = 1;         /* minor 1 */
    p[15] = 0xEF;      /* a schema hash that is not ours */
    host.s.state = FB_SESSION_CONNECTING;
    inject(&host, 1, FB_TYPE_HELLO, 77, p, 23, 0);
    CHECK_EQ_INT(host.s.stats.schema_mismatch, 1);
    CHECK_EQ_INT(host.s.stats.incompatible, 1);
    CHECK(!fb_session_is_ready(&host.s));
    pump();
    CHECK_EQ_INT(dev.s.stats.nacks_rx, 1);
}

static void test_hello_below_min_max_payload_malformed(void)
{
    uint8_t p[14];
    connect_pair();
    memset(p, 0, sizeof p);
    p[1] = p[2] = 1;
    p[11] = 63; /* max_payload 63 < 64 */
    inject(&host, 1, FB_TYPE_HELLO, 78, p, 14, 0);
    CHECK_EQ_INT(host.s.decoder.stats.malformed, 1);
}

static void test_reserved_bits_ignored(void)
{
    uint8_t p[23];
    connect_pair();
    memset(p, 0, sizeof p);
    p[0] = 0xFE;                   /* reserved flag bits set, REPLY_REQUESTED clear */
    p[1] = p[2] = 1;
    p[7] = 0xFF;                   /* every capability ... */
    p[10] = 0xFF;                  /* ... and unknown high bits */
    p[11] = 0x80;
    p[14] = 1;                     /* minor 1 */
    p[15] = (uint8_t)(FB_SCHEMA_HASH_V11 & 0xFFu);
    p[16] = (uint8_t)((FB_SCHEMA_HASH_V11 >> 8) & 0xFFu);
    p[17] = (uint8_t)((FB_SCHEMA_HASH_V11 >> 16) & 0xFFu);
    p[18] = (uint8_t)(FB_SCHEMA_HASH_V11 >> 24);
    host.s.state = FB_SESSION_CONNECTING;
    inject(&host, 1, FB_TYPE_HELLO, 90, p, 23, 0);
    CHECK(fb_session_is_ready(&host.s));
    CHECK_EQ_INT(host.s.stats.incompatible, 0);
    CHECK_EQ_INT(host.s.minor, 1);
}

static void test_v10_peer(void)
{
    fb_msg m;
    static const uint8_t token[4] = {7, 0, 0, 0};
    setup_node(&host, "host", 0, 100);
    setup_node(&dev, "dev", 0x5EED0001ul, 10);
    dev.s.cfg.minor_version = 0; /* a 1.0 device */
    fb_session_start(&host.s);
    fb_session_start(&dev.s);
    pump();
    CHECK(fb_session_is_ready(&host.s));
    CHECK(fb_session_is_ready(&dev.s));
    CHECK_EQ_INT(host.s.minor, 0);
    CHECK_EQ_INT(host.s.peer.has_extension, 0);
    /* the 1.1 host does not send 1.1-only types to it ... */
    memset(&m, 0, sizeof m);
    m.type = FB_TYPE_DEVICE_STATUS;
    CHECK_EQ_INT(fb_session_send(&host.s, &m), FB_E_UNSUPPORTED);
    CHECK_EQ_INT(host.s.stats.unadvertised, 1);
    /* ... and a 1.0 device answers one with UNKNOWN_TYPE, as 1.0 says */
    inject(&dev, 1, FB_TYPE_TIME_REQUEST, 5, token, 4, 0);
    pump();
    CHECK_EQ_INT(host.s.stats.nacks_rx, 1);
    /* 1.0 traffic still works */
    m = trigger(1);
    CHECK_EQ_INT(fb_session_send(&dev.s, &m), FB_OK);
    pump();
    CHECK_EQ_INT(host.by_type[FB_TYPE_TRIGGER], 1);
}

static void test_time_request_answered(void)
{
    static const uint8_t token[4] = {0x2A, 0, 0, 0};
    connect_pair();
    host.s.io.on_time_reply = time_reply_cb;
    time_replies = 0;
    inject(&dev, 1, FB_TYPE_TIME_REQUEST, 9, token, 4, 0);
    pump();
    CHECK_EQ_INT(time_replies, 1);
    CHECK_EQ_INT(last_time_reply.token, 0x2A);
    CHECK_EQ_INT(last_time_reply.device_ms, clock_ms);
    CHECK_EQ_INT(dev.s.stats.time_requests, 1);
}

static void test_inter_byte_timeout(void)
{
    static const uint8_t payload[5] = {1, 0, 0, 0, 0};
    connect_pair();
    inject(&host, 1, FB_TYPE_TRIGGER, 300, payload, 5, 6); /* the rest never comes */
    clock_ms += 150;
    inject(&host, 1, FB_TYPE_TRIGGER, 301, payload, 5, 0);
    CHECK_EQ_INT(host.s.decoder.stats.partial_timeouts, 1);
    CHECK_EQ_INT(host.by_type[FB_TYPE_TRIGGER], 1);
    CHECK_EQ_INT(host.s.decoder.stats.garbage, 0);
}

static void test_unadvertised_type_not_sent(void)
{
    fb_msg m;
    static uint8_t data[4];
    connect_pair();
    dev.s.peer.capabilities &= (uint32_t)~FB_CAP_SENSOR_FRAME;
    memset(&m, 0, sizeof m);
    m.type = FB_TYPE_SENSOR_FRAME;
    m.u.sensor.dtype = FB_DTYPE_U8;
    m.u.sensor.rank = 1;
    m.u.sensor.shape[0] = 4;
    m.u.sensor.data = data;
    m.u.sensor.data_len = 4;
    CHECK_EQ_INT(fb_session_send(&dev.s, &m), FB_E_UNSUPPORTED);
    CHECK_EQ_INT(dev.s.stats.unadvertised, 1);
}

static void test_bootloader_magic_and_link_loss_forgets_peer(void)
{
    static const uint8_t wrong[5] = {1, 2, 3, 4, 0};
    static const uint8_t right[5] = {0xAD, 0x10, 0x07, 0xB0, 0};
    connect_pair();
    inject(&dev, 1, FB_TYPE_ENTER_BOOTLOADER, 40, wrong, 5, 0);
    pump();
    CHECK_EQ_INT(dev.by_type[FB_TYPE_ENTER_BOOTLOADER], 0);
    CHECK_EQ_INT(dev.s.stats.nacks_tx, 1);
    inject(&dev, 1, FB_TYPE_ENTER_BOOTLOADER, 41, right, 5, 0);
    CHECK_EQ_INT(dev.by_type[FB_TYPE_ENTER_BOOTLOADER], 1);
    CHECK(host.s.has_peer);
    host.drop_all = dev.drop_all = 1;
    advance(3600);
    CHECK_EQ_INT(host.s.state, FB_SESSION_LINK_LOST);
    CHECK(!host.s.has_peer);
    host.drop_all = dev.drop_all = 0;
}

void test_session(void)
{
    test_handshake();
    test_reliable_and_retries();
    test_nack();
    test_reject_unknown_type();
    test_sensor_frame();
    test_heartbeat_and_link_loss();
    test_duplicate_memory_reset_by_hello();
    test_never_answer_ack_nack_heartbeat();
    test_bad_version_nacked_once_per_burst();
    test_sequence_wrap_is_not_a_duplicate();
    test_seq_never_ref_seq_none();
    test_schema_hash_mismatch_refused();
    test_hello_below_min_max_payload_malformed();
    test_reserved_bits_ignored();
    test_v10_peer();
    test_time_request_answered();
    test_inter_byte_timeout();
    test_unadvertised_type_not_sent();
    test_bootloader_magic_and_link_loss_forgets_peer();
}
