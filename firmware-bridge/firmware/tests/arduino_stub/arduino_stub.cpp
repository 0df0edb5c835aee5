/*
 * Host smoke run of the fb_reject_gate sketch: simulates 3 s of time, answers as the host would
 * (HELLO request at start), fires the photo-eye, and checks that the sketch emitted HELLO,
 * SENSOR_FRAME, TRIGGER, HEARTBEAT and DEVICE_STATUS frames, applied an IO_SET to the reject gate
 * pin, answered a TIME_REQUEST, and that its TX never blocked the 400 Hz sampling: Serial here is
 * a 115200-baud UART with a 64-byte FIFO whose write() blocks (advances the clock) when full, like
 * the real driver, and every accelerometer read is timed.
 */
#include "Arduino.h"

#include <stdio.h>
#include <string.h>

#include "fb_decoder.h"
#include "fb_protocol.h"

HardwareSerialStub Serial;

static unsigned long now_us = 0;
static void (*photo_eye)(void) = 0;
static uint8_t pins[32];
static uint8_t rx[256];
static size_t rx_len = 0;
static size_t rx_pos = 0;
static uint8_t decoder_buf[FB_MAX_ENCODED_FRAME];
static fb_decoder decoder;
static int seen[256];
static const unsigned long US_PER_BYTE = 87; /* 10 bits at 115200 baud */
static const unsigned long FIFO = 64;
static unsigned long fifo_empty_at_us = 0; /* when the bytes in the FIFO will have left */
static unsigned long last_sample_us = 0;
static unsigned long max_sample_gap_us = 0;
static unsigned long samples = 0;
static int bootloader_entered = 0;

void board_reset_to_bootloader(void) { bootloader_entered = 1; }

static unsigned long fifo_level(void)
{
    return fifo_empty_at_us > now_us ? (fifo_empty_at_us - now_us + US_PER_BYTE - 1) / US_PER_BYTE : 0ul;
}

unsigned long millis(void) { return now_us / 1000ul; }
unsigned long micros(void) { return now_us; }
void pinMode(uint8_t pin, uint8_t mode) { (void)pin; (void)mode; }
void digitalWrite(uint8_t pin, uint8_t value) { pins[pin % 32] = value; }
int digitalRead(uint8_t pin) { return pins[pin % 32]; }
int analogRead(uint8_t pin)
{
    if (pin == A0) {
        if (samples++ > 0 && now_us - last_sample_us > max_sample_gap_us) {
            max_sample_gap_us = now_us - last_sample_us;
        }
        last_sample_us = now_us;
    }
    return 512 + (int)((now_us / 100ul + pin) % 50ul) - 25;
}
int digitalPinToInterrupt(uint8_t pin) { return pin; }
void attachInterrupt(int irq, void (*isr)(void), int mode) { (void)irq; (void)mode; photo_eye = isr; }

void HardwareSerialStub::begin(unsigned long baud) { (void)baud; }
int HardwareSerialStub::available() { return (int)(rx_len - rx_pos); }
int HardwareSerialStub::read() { return rx_pos < rx_len ? rx[rx_pos++] : -1; }

int HardwareSerialStub::availableForWrite() { return (int)(FIFO - fifo_level()); }

size_t HardwareSerialStub::write(const uint8_t *data, size_t len)
{
    fb_msg msg;
    fb_reject reject;
    unsigned long level = fifo_level();
    if (level + len > FIFO) {
        now_us += (level + len - FIFO) * US_PER_BYTE; /* blocked until the FIFO had room */
    }
    fifo_empty_at_us = (fifo_empty_at_us > now_us ? fifo_empty_at_us : now_us) + len * US_PER_BYTE;
    for (size_t i = 0; i < len; ++i) {
        if (fb_decoder_push(&decoder, data[i], &msg, &reject) == FB_DECODE_MESSAGE) {
            seen[msg.type]++;
            if (msg.type == FB_TYPE_ACK && msg.u.ack.acked_type == FB_TYPE_ENTER_BOOTLOADER) {
                seen[0]++; /* the bootloader request was ACKed */
            }
        }
    }
    return len;
}

static void host_sends(const fb_msg &msg)
{
    size_t len = 0;
    if (fb_encode_frame(&msg, rx + rx_len, sizeof rx - rx_len, &len) == FB_OK) {
        rx_len += len;
    }
}

int main()
{
    fb_msg hello;
    fb_msg io;
    fb_msg time_request;
    fb_msg boot;
    fb_decoder_init(&decoder, decoder_buf, sizeof decoder_buf);
    memset(&hello, 0, sizeof hello);
    hello.type = FB_TYPE_HELLO;
    hello.u.hello.flags = FB_HELLO_REPLY_REQUESTED;
    hello.u.hello.min_version = 1;
    hello.u.hello.max_version = 1;
    hello.u.hello.max_payload = FB_MAX_PAYLOAD;
    hello.u.hello.capabilities = 0xFFul;
    hello.u.hello.has_extension = 1;
    hello.u.hello.minor_version = 1;
    hello.u.hello.schema_hash = FB_SCHEMA_HASH_V11;
    hello.u.hello.boot_id = 0x1234u;
    strcpy(hello.u.hello.firmware, "host-stub");
    memset(&time_request, 0, sizeof time_request);
    time_request.type = FB_TYPE_TIME_REQUEST;
    time_request.seq = 2;
    time_request.u.time_request.token = 7;
    memset(&boot, 0, sizeof boot);
    boot.type = FB_TYPE_ENTER_BOOTLOADER;
    boot.seq = 3;
    boot.u.enter_bootloader.magic = FB_BOOTLOADER_MAGIC;
    memset(&io, 0, sizeof io);
    io.type = FB_TYPE_IO_SET;
    io.seq = 1;
    io.u.io_set.output_id = 0;
    io.u.io_set.state = 1;

    setup();
    host_sends(hello);
    for (int step = 0; step < 30000; ++step) {
        now_us += 100;
        if (step == 5000) {
            photo_eye();
            host_sends(io);
            host_sends(time_request);
        }
        if (step == 25000) {
            host_sends(boot);
        }
        loop();
    }
    printf("sketch smoke run: HELLO=%d SENSOR_FRAME=%d TRIGGER=%d HEARTBEAT=%d DEVICE_STATUS=%d TIME_REPLY=%d "
           "ACK=%d gate=%d errors=%lu samples=%lu max_sample_gap_us=%lu bootloader=%d/%d\n",
           seen[FB_TYPE_HELLO], seen[FB_TYPE_SENSOR_FRAME], seen[FB_TYPE_TRIGGER], seen[FB_TYPE_HEARTBEAT],
           seen[FB_TYPE_DEVICE_STATUS], seen[FB_TYPE_TIME_REPLY], seen[FB_TYPE_ACK], pins[7],
           (unsigned long)fb_decoder_errors(&decoder.stats), samples, max_sample_gap_us, seen[0],
           bootloader_entered);
    bool ok = seen[FB_TYPE_HELLO] >= 2 && seen[FB_TYPE_SENSOR_FRAME] >= 5 && seen[FB_TYPE_TRIGGER] >= 1 &&
              seen[FB_TYPE_HEARTBEAT] >= 2 && seen[FB_TYPE_ACK] >= 1 && pins[7] == 1 &&
              seen[FB_TYPE_DEVICE_STATUS] >= 1 && seen[FB_TYPE_TIME_REPLY] == 1 && seen[0] == 1 &&
              bootloader_entered && fb_decoder_errors(&decoder.stats) == 0 &&
              max_sample_gap_us <= 2u * 2500u; /* 400 Hz sampling never stalled by TX */
    return ok ? 0 : 1;
}
