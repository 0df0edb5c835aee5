#include "fb_session.h"

static int reached(uint32_t now, uint32_t deadline)
{
    return (uint32_t)(now - deadline) < 0x80000000ul;
}

static int slot_of(uint8_t type)
{
    switch (type) {
    case FB_TYPE_TRIGGER:
        return 0;
    case FB_TYPE_RESULT:
        return 1;
    case FB_TYPE_IO_SET:
        return 2;
    case FB_TYPE_ENTER_BOOTLOADER:
        return 3;
    default:
        return -1;
    }
}

static int is_minor1_type(uint8_t type)
{
    return type == FB_TYPE_TIME_REQUEST || type == FB_TYPE_TIME_REPLY || type == FB_TYPE_DEVICE_STATUS ||
           type == FB_TYPE_ENTER_BOOTLOADER;
}

/* Capability bit a peer must have advertised before we send it this type (0: none needed). */
static uint32_t capability_of(uint8_t type)
{
    switch (type) {
    case FB_TYPE_SENSOR_FRAME:
        return FB_CAP_SENSOR_FRAME;
    case FB_TYPE_TRIGGER:
        return FB_CAP_TRIGGER;
    case FB_TYPE_RESULT:
        return FB_CAP_RESULT;
    case FB_TYPE_IO_SET:
        return FB_CAP_IO_SET;
    case FB_TYPE_DEVICE_STATUS:
        return FB_CAP_DEVICE_STATUS;
    case FB_TYPE_ENTER_BOOTLOADER:
        return FB_CAP_BOOTLOADER;
    default:
        return 0;
    }
}

static int retryable(uint8_t code)
{
    return code == FB_ERR_BUSY || code == FB_ERR_NOT_READY;
}

static void set_state(fb_session *s, fb_session_state state)
{
    if (s->state == state) {
        return;
    }
    s->state = state;
    if (s->io.on_state != NULL) {
        s->io.on_state(s->io.ctx, state);
    }
}

/* Encode and write msg as is (its seq already set). */
static fb_status transmit(fb_session *s, const fb_msg *msg)
{
    size_t len = 0;
    fb_status status = fb_encode_frame(msg, s->tx_buf, sizeof s->tx_buf, &len);
    if (status != FB_OK) {
        s->stats.tx_failed++;
        return status;
    }
    if (s->io.write(s->io.ctx, s->tx_buf, len) != 0) {
        s->stats.tx_failed++;
        return FB_E_IO;
    }
    s->stats.tx_frames++;
    return FB_OK;
}

static fb_status transmit_new(fb_session *s, fb_msg *msg)
{
    msg->seq = s->next_seq++;
    if (s->next_seq == FB_REF_SEQ_NONE && s->cfg.minor_version > 0) {
        s->next_seq = 0; /* 1.1: 0xFFFF means "no message" in RESULT.ref_seq */
    }
    return transmit(s, msg);
}

static void send_ack(fb_session *s, uint8_t type, uint16_t seq, uint8_t code)
{
    fb_msg m;
    m.type = code == FB_ERR_NONE ? FB_TYPE_ACK : FB_TYPE_NACK;
    m.u.ack.acked_type = type;
    m.u.ack.acked_seq = seq;
    m.u.ack.code = code;
    if (code != FB_ERR_NONE) {
        s->stats.nacks_tx++;
    }
    (void)transmit_new(s, &m);
}

static void send_hello(fb_session *s, uint8_t flags)
{
    fb_msg m;
    size_t i;
    const char *text = s->cfg.firmware != NULL ? s->cfg.firmware : "";
    m.type = FB_TYPE_HELLO;
    m.u.hello.flags = flags;
    m.u.hello.min_version = FB_MIN_PROTOCOL_VERSION;
    m.u.hello.max_version = FB_MAX_PROTOCOL_VERSION;
    m.u.hello.device_id = s->cfg.device_id;
    m.u.hello.capabilities = s->cfg.capabilities;
    m.u.hello.max_payload = s->cfg.max_payload;
    for (i = 0; i < FB_FIRMWARE_MAX && text[i] != '\0'; ++i) {
        m.u.hello.firmware[i] = text[i];
    }
    m.u.hello.firmware[i] = '\0';
    m.u.hello.has_extension = (uint8_t)(s->cfg.minor_version > 0);
    m.u.hello.minor_version = s->cfg.minor_version;
    m.u.hello.schema_hash = s->cfg.minor_version > 0 ? FB_SCHEMA_HASH_V11 : 0u;
    m.u.hello.boot_id = s->cfg.minor_version > 0 ? s->cfg.boot_id : 0u;
    (void)transmit_new(s, &m);
}

static void send_heartbeat(fb_session *s, uint32_t now)
{
    fb_msg m;
    m.type = FB_TYPE_HEARTBEAT;
    m.u.heartbeat.uptime_ms = now - s->start_ms;
    m.u.heartbeat.rx_frames = s->decoder.stats.frames_ok;
    m.u.heartbeat.rx_errors = fb_decoder_errors(&s->decoder.stats);
    m.u.heartbeat.tx_frames = s->stats.tx_frames;
    m.u.heartbeat.tx_retries = s->stats.retries;
    (void)transmit_new(s, &m);
}

static void finish(fb_session *s, int slot, fb_delivery_status status, uint8_t code)
{
    fb_pending *p = &s->pending[slot];
    p->active = 0;
    if (s->io.on_delivery != NULL) {
        s->io.on_delivery(s->io.ctx, p->msg.type, p->msg.seq, status, code);
    }
}

void fb_session_default_config(fb_session_config *cfg)
{
    cfg->device_id = 0;
    cfg->capabilities = FB_CAP_SENSOR_FRAME | FB_CAP_TRIGGER | FB_CAP_RESULT | FB_CAP_IO_SET | FB_CAP_HEARTBEAT |
                        FB_CAP_TIME_SYNC | FB_CAP_DEVICE_STATUS;
    cfg->firmware = "fb-ref/1.1.0";
    cfg->max_payload = (uint16_t)(FB_SESSION_RX_CAP > FB_MAX_ENCODED_FRAME
                                      ? FB_MAX_PAYLOAD
                                      : FB_SESSION_RX_CAP - FB_SESSION_RX_CAP / 254u - 1u - 8u);
    cfg->initial_seq = 0;
    cfg->boot_id = 0;
    cfg->minor_version = FB_PROTOCOL_MINOR;
    cfg->duplicate_window_ms = FB_DUPLICATE_WINDOW_MS;
    cfg->inter_byte_timeout_ms = FB_INTER_BYTE_TIMEOUT_MS;
    cfg->nack_burst_ms = FB_NACK_BURST_MS;
    cfg->heartbeat_interval_ms = FB_HEARTBEAT_INTERVAL_MS;
    cfg->link_timeout_ms = FB_LINK_TIMEOUT_MS;
    cfg->ack_timeout_ms = FB_ACK_TIMEOUT_MS;
    cfg->hello_interval_ms = FB_HELLO_INTERVAL_MS;
    cfg->max_retries = FB_MAX_RETRIES;
}

void fb_session_init(fb_session *s, const fb_session_config *cfg, const fb_session_io *io)
{
    fb_session_stats zero_stats = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    int i;
    s->cfg = *cfg;
    s->io = *io;
    fb_decoder_init(&s->decoder, s->rx_buf, sizeof s->rx_buf);
    s->state = FB_SESSION_STOPPED;
    s->next_seq = cfg->initial_seq;
    s->start_ms = s->last_rx_ms = s->next_heartbeat_ms = s->next_hello_ms = 0;
    for (i = 0; i < FB_RELIABLE_SLOTS; ++i) {
        s->pending[i].active = 0;
        s->pending[i].attempts = 0;
        s->pending[i].last_code = FB_ERR_NONE;
        s->pending[i].deadline = 0;
        s->last_seen_valid[i] = 0;
        s->last_seen_seq[i] = 0;
        s->last_seen_ms[i] = 0;
    }
    s->peer_boot_id = 0;
    s->minor = 0;
    s->burst_open = 1;
    s->burst_nacked = 0;
    s->last_burst_nack_ms = 0;
    s->last_byte_ms = 0;
    s->has_peer = 0;
    s->peer_heartbeat.uptime_ms = 0;
    s->peer_heartbeat.rx_frames = s->peer_heartbeat.rx_errors = 0;
    s->peer_heartbeat.tx_frames = s->peer_heartbeat.tx_retries = 0;
    s->stats = zero_stats;
}

void fb_session_start(fb_session *s)
{
    static const uint8_t flush = 0;
    uint32_t now = s->io.now_ms(s->io.ctx);
    if (s->state == FB_SESSION_STOPPED) {
        s->start_ms = now;
    }
    fb_decoder_reset(&s->decoder);
    set_state(s, FB_SESSION_CONNECTING);
    s->last_rx_ms = now;
    s->next_heartbeat_ms = now + s->cfg.heartbeat_interval_ms;
    s->next_hello_ms = now + s->cfg.hello_interval_ms;
    (void)s->io.write(s->io.ctx, &flush, 1);
    send_hello(s, FB_HELLO_REPLY_REQUESTED);
}

int fb_session_is_ready(const fb_session *s)
{
    return s->state == FB_SESSION_READY;
}

int fb_session_in_flight(const fb_session *s, uint8_t type)
{
    int slot = slot_of(type);
    return slot >= 0 && s->pending[slot].active;
}

fb_status fb_session_send(fb_session *s, fb_msg *msg)
{
    int slot = slot_of(msg->type);
    long size = fb_payload_size(msg);
    fb_status status;

    if (msg->type == FB_TYPE_HELLO || msg->type == FB_TYPE_ACK || msg->type == FB_TYPE_NACK || size < 0) {
        return size < 0 ? (fb_status)size : FB_E_INVALID;
    }
    if (FB_ENCODED_SIZE((size_t)size) > sizeof s->tx_buf) {
        return FB_E_TOO_LARGE;
    }
    if ((is_minor1_type(msg->type) && (s->cfg.minor_version == 0 || (s->has_peer && !s->peer.has_extension))) ||
        (s->has_peer && (s->peer.capabilities & capability_of(msg->type)) != capability_of(msg->type))) {
        s->stats.unadvertised++;
        return FB_E_UNSUPPORTED;
    }
    if (slot < 0) {
        return transmit_new(s, msg);
    }
    if (s->pending[slot].active) {
        return FB_E_BUSY;
    }
    status = transmit_new(s, msg);
    s->pending[slot].msg = *msg;
    s->pending[slot].active = 1;
    s->pending[slot].attempts = 1;
    s->pending[slot].last_code = FB_ERR_NONE;
    s->pending[slot].deadline = s->io.now_ms(s->io.ctx) + s->cfg.ack_timeout_ms;
    return status == FB_E_IO ? FB_OK : status;
}

static void on_hello(fb_session *s, const fb_msg *msg)
{
    const fb_hello *h = &msg->u.hello;
    int request = (h->flags & FB_HELLO_REPLY_REQUESTED) != 0;
    int i;

    uint32_t peer_boot = h->has_extension ? h->boot_id : 0u;

    s->peer = *h;
    s->has_peer = 1;
    if (request || peer_boot != s->peer_boot_id) {
        for (i = 0; i < FB_RELIABLE_SLOTS; ++i) {
            s->last_seen_valid[i] = 0; /* the peer started a new session or rebooted */
        }
        s->peer_boot_id = peer_boot;
    }
    if ((h->min_version > FB_MIN_PROTOCOL_VERSION ? h->min_version : FB_MIN_PROTOCOL_VERSION) >
        (h->max_version < FB_MAX_PROTOCOL_VERSION ? h->max_version : FB_MAX_PROTOCOL_VERSION)) {
        s->stats.incompatible++;
        send_ack(s, FB_TYPE_HELLO, msg->seq, FB_ERR_UNSUPPORTED_VERSION);
        return;
    }
    /* 1.1: both sides announce the hash of their message table; a known minor must match */
    if (s->cfg.minor_version > 0 && h->has_extension && h->minor_version <= 1u &&
        h->schema_hash != (h->minor_version == 0u ? FB_SCHEMA_HASH_V10 : FB_SCHEMA_HASH_V11)) {
        s->stats.incompatible++;
        s->stats.schema_mismatch++;
        send_ack(s, FB_TYPE_HELLO, msg->seq, FB_ERR_UNSUPPORTED_VERSION);
        return;
    }
    s->minor = (uint8_t)(h->has_extension && s->cfg.minor_version > 0 ? 1u : 0u);
    if (request) {
        send_hello(s, 0);
    }
    if (s->state != FB_SESSION_READY) {
        s->stats.handshakes++;
        set_state(s, FB_SESSION_READY);
    }
}

static void on_ack(fb_session *s, const fb_msg *msg, uint32_t now)
{
    int slot = slot_of(msg->u.ack.acked_type);
    fb_pending *p;
    (void)now;
    if (msg->type == FB_TYPE_NACK) {
        s->stats.nacks_rx++;
    } else {
        s->stats.acks_rx++;
    }
    p = slot >= 0 ? &s->pending[slot] : NULL;
    if (p == NULL || !p->active || p->msg.seq != msg->u.ack.acked_seq) {
        s->stats.stray_acks++;
        return;
    }
    if (msg->type == FB_TYPE_ACK) {
        finish(s, slot, FB_DELIVERY_ACKED, FB_ERR_NONE);
    } else if (retryable(msg->u.ack.code)) {
        p->last_code = msg->u.ack.code; /* keep the retry schedule */
    } else {
        finish(s, slot, FB_DELIVERY_NACKED, msg->u.ack.code);
    }
}

static void on_reliable(fb_session *s, const fb_msg *msg, uint32_t now)
{
    int slot = slot_of(msg->type);
    uint8_t code;
    if (s->last_seen_valid[slot] && s->last_seen_seq[slot] == msg->seq &&
        (uint32_t)(now - s->last_seen_ms[slot]) <= s->cfg.duplicate_window_ms) {
        s->stats.duplicates++;
        send_ack(s, msg->type, msg->seq, FB_ERR_NONE);
        return;
    }
    if (msg->type == FB_TYPE_ENTER_BOOTLOADER && msg->u.enter_bootloader.magic != FB_BOOTLOADER_MAGIC) {
        code = FB_ERR_INVALID_ARGUMENT; /* guard against a stray frame resetting the device */
    } else {
        code = s->io.on_message(s->io.ctx, msg);
    }
    if (code == FB_ERR_NONE) {
        s->stats.delivered++;
        s->last_seen_valid[slot] = 1;
        s->last_seen_seq[slot] = msg->seq;
        s->last_seen_ms[slot] = now;
    }
    send_ack(s, msg->type, msg->seq, code);
}

static void answer_time(fb_session *s, const fb_msg *msg, uint32_t now)
{
    fb_msg m;
    m.type = FB_TYPE_TIME_REPLY;
    m.u.time_reply.token = msg->u.time_request.token;
    m.u.time_reply.device_ms = now;
    s->stats.time_requests++;
    (void)transmit_new(s, &m);
}

/* NACK a rejected frame unless the rules say not to (never-answer types; one NACK per burst). */
static void reject_frame(fb_session *s, const fb_reject *reject, uint32_t now)
{
    int unknown_to_us = s->cfg.minor_version == 0 && is_minor1_type(reject->type);
    if (!fb_type_is_nackable(reject->type) && !unknown_to_us) {
        s->stats.nacks_suppressed++;
        return;
    }
    if (reject->code == FB_ERR_UNSUPPORTED_VERSION || reject->code == FB_ERR_UNKNOWN_TYPE) {
        if (!s->burst_open && s->burst_nacked && (uint32_t)(now - s->last_burst_nack_ms) < s->cfg.nack_burst_ms) {
            s->stats.nacks_suppressed++;
            return;
        }
        s->burst_open = 0;
        s->burst_nacked = 1;
        s->last_burst_nack_ms = now;
    }
    send_ack(s, reject->type, reject->seq, reject->code);
}

static void dispatch(fb_session *s, const fb_msg *msg, uint32_t now)
{
    s->stats.rx_messages++;
    s->burst_open = 1;
    if (is_minor1_type(msg->type) && s->cfg.minor_version == 0) {
        fb_reject r; /* a 1.0 implementation does not know the 1.1 types */
        r.type = msg->type;
        r.seq = msg->seq;
        r.code = FB_ERR_UNKNOWN_TYPE;
        reject_frame(s, &r, now);
        return;
    }
    switch (msg->type) {
    case FB_TYPE_HELLO:
        on_hello(s, msg);
        break;
    case FB_TYPE_ACK:
    case FB_TYPE_NACK:
        on_ack(s, msg, now);
        break;
    case FB_TYPE_HEARTBEAT:
        s->peer_heartbeat = msg->u.heartbeat;
        break;
    case FB_TYPE_SENSOR_FRAME:
    case FB_TYPE_DEVICE_STATUS:
        s->stats.delivered++;
        (void)s->io.on_message(s->io.ctx, msg);
        break;
    case FB_TYPE_TIME_REQUEST:
        answer_time(s, msg, now);
        break;
    case FB_TYPE_TIME_REPLY:
        if (s->io.on_time_reply != NULL) {
            s->io.on_time_reply(s->io.ctx, &msg->u.time_reply, now);
        }
        break;
    default:
        on_reliable(s, msg, now);
        break;
    }
}

void fb_session_rx(fb_session *s, const uint8_t *data, size_t len)
{
    size_t i;
    fb_msg msg;
    fb_reject reject;
    uint32_t now;
    if (len == 0) {
        return;
    }
    now = s->io.now_ms(s->io.ctx);
    if ((uint32_t)(now - s->last_byte_ms) >= s->cfg.inter_byte_timeout_ms) {
        fb_decoder_expire(&s->decoder); /* the rest of a partial frame never came */
    }
    s->last_byte_ms = now;
    for (i = 0; i < len; ++i) {
        fb_decode_result r = fb_decoder_push(&s->decoder, data[i], &msg, &reject);
        if (r == FB_DECODE_NONE) {
            continue;
        }
        s->last_rx_ms = now;
        if (r == FB_DECODE_MESSAGE) {
            dispatch(s, &msg, now);
        } else {
            reject_frame(s, &reject, now);
        }
    }
}

static void poll_slot(fb_session *s, int slot, uint32_t now)
{
    fb_pending *p = &s->pending[slot];
    if (!p->active || !reached(now, p->deadline)) {
        return;
    }
    if (p->attempts > s->cfg.max_retries) {
        s->stats.timeouts++;
        finish(s, slot, FB_DELIVERY_TIMED_OUT, p->last_code);
        return;
    }
    p->attempts++;
    p->deadline = now + s->cfg.ack_timeout_ms;
    s->stats.retries++;
    (void)transmit(s, &p->msg); /* same seq: byte-identical retransmission */
}

void fb_session_poll(fb_session *s)
{
    uint32_t now = s->io.now_ms(s->io.ctx);
    int slot;
    if (s->state == FB_SESSION_STOPPED) {
        return;
    }
    if (reached(now, s->next_heartbeat_ms)) {
        s->next_heartbeat_ms = now + s->cfg.heartbeat_interval_ms;
        send_heartbeat(s, now);
    }
    if (s->state == FB_SESSION_READY && (uint32_t)(now - s->last_rx_ms) >= s->cfg.link_timeout_ms) {
        s->stats.link_losses++;
        s->has_peer = 0; /* identity unknown until the next HELLO */
        set_state(s, FB_SESSION_LINK_LOST);
        s->next_hello_ms = now;
    }
    if (s->state != FB_SESSION_READY && reached(now, s->next_hello_ms)) {
        s->next_hello_ms = now + s->cfg.hello_interval_ms;
        send_hello(s, FB_HELLO_REPLY_REQUESTED);
    }
    for (slot = 0; slot < FB_RELIABLE_SLOTS; ++slot) {
        poll_slot(s, slot, now);
    }
}
