/*
 * fb_reject_gate: thin Arduino board layer over the firmware-bridge C core.
 *
 *   photo-eye input (pin 2, active low)  -> TRIGGER (debounced, timestamped in the ISR)
 *   IO_SET output 0                      -> reject gate driver (pin 7)
 *   IO_SET output 1                      -> status lamp (LED_BUILTIN)
 *   analog accelerometer on A0..A2       -> SENSOR_FRAME float32 [128, 3] in g at 400 Hz
 *   RESULT                               -> kept as last_result; a FAIL verdict pulses the gate
 *                                           unless the host drives it explicitly with IO_SET
 *   DEVICE_STATUS every 5 s              -> trigger overflows, late samples, windows not sent
 *   ENTER_BOOTLOADER                     -> ACK, drain TX, board_reset_to_bootloader()
 *
 * TX never blocks loop(): frames go into two queues and loop() hands the UART only what
 * Serial.availableForWrite() accepts. Control frames (ACK, NACK, HELLO, HEARTBEAT, TRIGGER, ...)
 * go first; a SENSOR_FRAME is sent when no control frame waits, and once started it finishes
 * before the next control frame (frames cannot interleave). So an ACK waits at most for the rest of
 * one window (~135 ms at 115200), and the 400 Hz sampling stays evenly spaced. A window that comes
 * due while the previous one is still being sent is dropped and counted (tx_dropped).
 *
 * Target: 32-bit Arduino-class boards with >= 16 KB RAM (SAMD21/SAMD51, RP2040, ESP32, nRF52);
 * the f32 window and the transmit buffer need ~3.2 KB. Setup: `make -C firmware arduino-sync`
 * copies the core next to this sketch, then build/upload with the Arduino IDE or arduino-cli.
 * All protocol logic lives in the core; this file only touches pins, the clock and Serial.
 */
#include <Arduino.h>

#include "fb_session.h"

#ifdef FB_HAVE_BOOTLOADER
/* Vendor-specific: reset into the serial/USB bootloader (e.g. SAMD double-tap magic, RP2040
 * reset_usb_boot, ESP32 download mode via the boot strap). Define FB_HAVE_BOOTLOADER in
 * fb_board_config.h and implement this for your board; without it the sketch does not advertise
 * BOOTLOADER and the host never sends ENTER_BOOTLOADER (PROTOCOL.md R8, R12). */
void board_reset_to_bootloader(void);
#endif

/* ---- board wiring ------------------------------------------------------------------------ */
static const uint8_t PHOTO_EYE_PIN = 2;
static const uint8_t OUTPUT_PINS[] = {7, LED_BUILTIN}; /* output ids 0 and 1 */
static const uint8_t OUTPUT_COUNT = sizeof OUTPUT_PINS / sizeof OUTPUT_PINS[0];
static const uint8_t ACCEL_PINS[3] = {A0, A1, A2};

static const unsigned long BAUD = 115200;
static const uint32_t DEBOUNCE_MS = 5;
static const uint16_t AUTO_REJECT_PULSE_MS = 200;
static const uint32_t SAMPLE_PERIOD_US = 2500; /* 400 Hz */
static const uint16_t WINDOW = 128;
static const float ADC_ZERO = 512.0f;   /* ADXL335 on a 3.3 V, 10-bit ADC: 0 g at mid-scale */
static const float ADC_PER_G = 102.3f;  /* 330 mV/g */
static const uint8_t TRIGGER_QUEUE = 8; /* photo-eye edges waiting for the previous TRIGGER's ACK */
static const uint32_t STATUS_PERIOD_MS = 5000;
static const uint16_t CONTROL_TX = 256; /* control frames waiting for the UART */

/* ---- state ----------------------------------------------------------------------------------- */
static fb_session session;
static fb_result last_result;

static volatile uint32_t trigger_times[TRIGGER_QUEUE];
static volatile uint8_t trigger_head; /* written by the ISR */
static uint8_t trigger_tail;          /* written by loop() */
static volatile uint32_t trigger_overflows;
static volatile uint32_t last_edge_ms;

static float window[WINDOW * 3];
static uint16_t window_fill;
static uint32_t window_start_ms;
static uint32_t next_sample_us;

/* TX queues (see the header comment) */
static uint8_t control_tx[CONTROL_TX];
static uint16_t control_head, control_len;
static uint8_t bulk_tx[FB_SESSION_TX_CAP];
static uint16_t bulk_pos, bulk_len; /* bulk_pos > 0: a SENSOR_FRAME is on the wire */
static uint8_t writing_bulk;        /* set around fb_session_send of a SENSOR_FRAME */
static uint32_t tx_dropped;
static uint32_t sample_overruns;
static uint32_t next_status_ms;
static uint8_t status_sent_since_ready;
#ifdef FB_HAVE_BOOTLOADER
static uint8_t bootloader_pending;
#endif

static uint32_t pulse_end_ms[sizeof OUTPUT_PINS];
static uint8_t pulse_active[sizeof OUTPUT_PINS];
static uint8_t pulse_revert[sizeof OUTPUT_PINS];

/* ---- fb_session_io callbacks --------------------------------------------------------------- */
static uint32_t board_now_ms(void *ctx)
{
    (void)ctx;
    return millis();
}

/* Queue a frame; never blocks. Returns -1 if it does not fit (the core counts it; reliable
 * messages are retransmitted). */
static int board_write(void *ctx, const uint8_t *data, size_t len)
{
    size_t i;
    (void)ctx;
    if (writing_bulk) {
        if (bulk_len != 0 || len > sizeof bulk_tx) {
            return -1;
        }
        for (i = 0; i < len; ++i) {
            bulk_tx[i] = data[i];
        }
        bulk_pos = 0;
        bulk_len = (uint16_t)len;
        return 0;
    }
    if (control_len + len > CONTROL_TX) {
        return -1;
    }
    for (i = 0; i < len; ++i) {
        control_tx[(control_head + control_len + i) % CONTROL_TX] = data[i];
    }
    control_len = (uint16_t)(control_len + len);
    return 0;
}

/* Hand the UART what it takes without blocking: control bytes first unless a window is mid-frame. */
static void drain_tx(void)
{
    int room = Serial.availableForWrite();
    while (room > 0) {
        if (bulk_len != 0 && (bulk_pos > 0 || control_len == 0)) {
            size_t n = (size_t)(bulk_len - bulk_pos) < (size_t)room ? (size_t)(bulk_len - bulk_pos) : (size_t)room;
            Serial.write(bulk_tx + bulk_pos, n);
            bulk_pos = (uint16_t)(bulk_pos + n);
            room -= (int)n;
            if (bulk_pos == bulk_len) {
                bulk_pos = bulk_len = 0;
            }
        } else if (control_len != 0) {
            size_t run = CONTROL_TX - control_head; /* contiguous bytes up to the ring's end */
            size_t n = control_len < run ? control_len : run;
            n = n < (size_t)room ? n : (size_t)room;
            Serial.write(control_tx + control_head, n);
            control_head = (uint16_t)((control_head + n) % CONTROL_TX);
            control_len = (uint16_t)(control_len - n);
            room -= (int)n;
        } else {
            return;
        }
    }
}

static void set_output(uint8_t id, uint8_t state, uint16_t pulse_ms)
{
    digitalWrite(OUTPUT_PINS[id], state ? HIGH : LOW);
    pulse_active[id] = pulse_ms > 0;
    pulse_revert[id] = (uint8_t)!state;
    pulse_end_ms[id] = millis() + pulse_ms;
}

static uint8_t board_on_message(void *ctx, const fb_msg *msg)
{
    (void)ctx;
    if (msg->type == FB_TYPE_IO_SET) {
        if (msg->u.io_set.output_id >= OUTPUT_COUNT) {
            return FB_ERR_INVALID_ARGUMENT;
        }
        set_output(msg->u.io_set.output_id, msg->u.io_set.state, msg->u.io_set.pulse_ms);
    } else if (msg->type == FB_TYPE_RESULT) {
        last_result = msg->u.result;
        if (last_result.verdict == FB_VERDICT_FAIL && !pulse_active[0]) {
            set_output(0, 1, AUTO_REJECT_PULSE_MS);
        }
    } else if (msg->type == FB_TYPE_ENTER_BOOTLOADER) {
#ifdef FB_HAVE_BOOTLOADER
        if (msg->u.enter_bootloader.mode != 0) {
            return FB_ERR_INVALID_ARGUMENT; /* only the vendor bootloader (mode 0) exists here */
        }
        bootloader_pending = 1; /* after the ACK has left the UART */
#else
        return FB_ERR_NOT_READY; /* not advertised: a host should not have sent it */
#endif
    }
    return FB_ERR_NONE;
}

/* ---- inputs ------------------------------------------------------------------------------------ */
static void photo_eye_isr(void)
{
    uint32_t now = millis();
    uint8_t next = (uint8_t)((trigger_head + 1u) % TRIGGER_QUEUE);
    if (now - last_edge_ms >= DEBOUNCE_MS) {
        if (next == trigger_tail) {
            trigger_overflows = trigger_overflows + 1u;
        } else {
            trigger_times[trigger_head] = now;
            trigger_head = next;
        }
    }
    last_edge_ms = now;
}

static void send_pending_trigger(void)
{
    fb_msg msg;
    if (trigger_tail == trigger_head || fb_session_in_flight(&session, FB_TYPE_TRIGGER)) {
        return;
    }
    msg.type = FB_TYPE_TRIGGER;
    msg.u.trigger.input_id = 0;
    msg.u.trigger.timestamp_ms = trigger_times[trigger_tail];
    if (fb_session_send(&session, &msg) == FB_OK) {
        trigger_tail = (uint8_t)((trigger_tail + 1u) % TRIGGER_QUEUE);
    }
}

static void sample_accelerometer(void)
{
    uint32_t now_us = micros();
    uint8_t axis;
    fb_msg msg;
    if ((uint32_t)(now_us - next_sample_us) >= 0x80000000ul) {
        return; /* not yet time for the next sample */
    }
    next_sample_us += SAMPLE_PERIOD_US;
    if ((uint32_t)(now_us - next_sample_us) < 0x80000000ul) {
        sample_overruns++; /* more than a period late: resynchronise instead of bursting */
        next_sample_us = now_us + SAMPLE_PERIOD_US;
    }
    if (window_fill == 0) {
        window_start_ms = millis();
    }
    for (axis = 0; axis < 3; ++axis) {
        window[window_fill * 3u + axis] = ((float)analogRead(ACCEL_PINS[axis]) - ADC_ZERO) / ADC_PER_G;
    }
    if (++window_fill < WINDOW) {
        return;
    }
    window_fill = 0;
    if (!fb_session_is_ready(&session)) {
        return;
    }
    /* float is IEEE-754 binary32 and little-endian on all targeted MCUs: send the buffer as is */
    msg.type = FB_TYPE_SENSOR_FRAME;
    msg.u.sensor.sensor_id = 0;
    msg.u.sensor.timestamp_ms = window_start_ms;
    msg.u.sensor.dtype = FB_DTYPE_F32;
    msg.u.sensor.rank = 2;
    msg.u.sensor.shape[0] = WINDOW;
    msg.u.sensor.shape[1] = 3;
    msg.u.sensor.data = (const uint8_t *)window;
    msg.u.sensor.data_len = (uint16_t)sizeof window;
    if (bulk_len != 0) {
        tx_dropped++; /* the previous window is still on the wire */
        return;
    }
    writing_bulk = 1;
    (void)fb_session_send(&session, &msg);
    writing_bulk = 0;
}

static void send_status(void)
{
    fb_msg msg;
    uint32_t now = millis();
    if (!fb_session_is_ready(&session)) {
        status_sent_since_ready = 0;
        return;
    }
    if (status_sent_since_ready && (uint32_t)(now - next_status_ms) >= 0x80000000ul) {
        return;
    }
    msg.type = FB_TYPE_DEVICE_STATUS;
    msg.u.device_status.uptime_ms = now;
    msg.u.device_status.fault_flags = 0;
    msg.u.device_status.trigger_overflows = trigger_overflows;
    msg.u.device_status.sample_overruns = sample_overruns;
    msg.u.device_status.tx_dropped = tx_dropped;
    (void)fb_session_send(&session, &msg); /* FB_E_UNSUPPORTED for a 1.0 host: fine */
    status_sent_since_ready = 1;
    next_status_ms = now + STATUS_PERIOD_MS;
}

static void expire_pulses(void)
{
    uint8_t id;
    uint32_t now = millis();
    for (id = 0; id < OUTPUT_COUNT; ++id) {
        if (pulse_active[id] && (uint32_t)(now - pulse_end_ms[id]) < 0x80000000ul) {
            pulse_active[id] = 0;
            digitalWrite(OUTPUT_PINS[id], pulse_revert[id] ? HIGH : LOW);
        }
    }
}

/* ---- Arduino entry points ---------------------------------------------------------------------- */
void setup()
{
    fb_session_config cfg;
    fb_session_io io;
    uint8_t id;

    Serial.begin(BAUD);
    pinMode(PHOTO_EYE_PIN, INPUT_PULLUP);
    for (id = 0; id < OUTPUT_COUNT; ++id) {
        pinMode(OUTPUT_PINS[id], OUTPUT);
        digitalWrite(OUTPUT_PINS[id], LOW);
    }
    attachInterrupt(digitalPinToInterrupt(PHOTO_EYE_PIN), photo_eye_isr, FALLING);

    fb_session_default_config(&cfg);
    cfg.device_id = 0x5EED0001ul;
    cfg.firmware = "fb-ref/1.1.0";
#ifdef FB_HAVE_BOOTLOADER
    cfg.capabilities |= FB_CAP_BOOTLOADER;
#endif
    cfg.initial_seq = (uint16_t)(analogRead(ACCEL_PINS[0]) * 31u + micros()); /* differs per boot */
    cfg.boot_id = ((uint32_t)analogRead(ACCEL_PINS[1]) << 20) ^ ((uint32_t)analogRead(ACCEL_PINS[2]) << 10) ^
                  micros(); /* differs per boot (ADC noise + start-up jitter) */
    io.ctx = NULL;
    io.now_ms = board_now_ms;
    io.write = board_write;
    io.on_message = board_on_message;
    io.on_delivery = NULL;
    io.on_state = NULL;
    io.on_time_reply = NULL;
    fb_session_init(&session, &cfg, &io);
    fb_session_start(&session);
    next_sample_us = micros();
}

void loop()
{
    uint8_t chunk[32];
    size_t n = 0;
    while (n < sizeof chunk && Serial.available() > 0) {
        chunk[n++] = (uint8_t)Serial.read();
    }
    if (n > 0) {
        fb_session_rx(&session, chunk, n);
    }
    fb_session_poll(&session);
    send_pending_trigger();
    sample_accelerometer();
    send_status();
    expire_pulses();
    drain_tx();
#ifdef FB_HAVE_BOOTLOADER
    if (bootloader_pending && control_len == 0 && bulk_len == 0 && Serial.availableForWrite() >= 64) {
        board_reset_to_bootloader(); /* the ACK is out; on hardware this does not return */
        bootloader_pending = 0;
    }
#endif
}
