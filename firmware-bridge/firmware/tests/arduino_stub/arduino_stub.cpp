/*
 * Host smoke run of the fb_reject_gate sketch: simulates 3 s of time, answers as the host would
 * (HELLO request at start), fires the photo-eye, and checks that the sketch emitted HELLO,
 * SENSOR_FRAME, TRIGGER and HEARTBEAT frames and applied an IO_SET to the reject gate pin.
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

unsigned long millis(void) { return now_us / 1000ul; }
unsigned long micros(void) { return now_us; }
void pinMode(uint8_t pin, uint8_t mode) { (void)pin; (void)mode; }
void digitalWrite(uint8_t pin, uint8_t value) { pins[pin % 32] = value; }
int digitalRead(uint8_t pin) { return pins[pin % 32]; }
int analogRead(uint8_t pin) { return 512 + (int)((now_us / 100ul + pin) % 50ul) - 25; }
int digitalPinToInterrupt(uint8_t pin) { return pin; }
void attachInterrupt(int irq, void (*isr)(void), int mode) { (void)irq; (void)mode; photo_eye = isr; }

void HardwareSerialStub::begin(unsigned long baud) { (void)baud; }
int HardwareSerialStub::available() { return (int)(rx_len - rx_pos); }
int HardwareSerialStub::read() { return rx_pos < rx_len ? rx[rx_pos++] : -1; }

size_t HardwareSerialStub::write(const uint8_t *data, size_t len)
{
    fb_msg msg;
    fb_reject reject;
    for (size_t i = 0; i < len; ++i) {
        if (fb_decoder_push(&decoder, data[i], &msg, &reject) == FB_DECODE_MESSAGE) {
            seen[msg.type]++;
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
    fb_decoder_init(&decoder, decoder_buf, sizeof decoder_buf);
    memset(&hello, 0, sizeof hello);
    hello.type = FB_TYPE_HELLO;
    hello.u.hello.flags = FB_HELLO_REPLY_REQUESTED;
    hello.u.hello.min_version = 1;
    hello.u.hello.max_version = 1;
    hello.u.hello.max_payload = FB_MAX_PAYLOAD;
    strcpy(hello.u.hello.firmware, "host-stub");
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
        }
        loop();
    }
    printf("sketch smoke run: HELLO=%d SENSOR_FRAME=%d TRIGGER=%d HEARTBEAT=%d ACK=%d gate=%d errors=%lu\n",
           seen[FB_TYPE_HELLO], seen[FB_TYPE_SENSOR_FRAME], seen[FB_TYPE_TRIGGER], seen[FB_TYPE_HEARTBEAT],
           seen[FB_TYPE_ACK], pins[7], (unsigned long)fb_decoder_errors(&decoder.stats));
    bool ok = seen[FB_TYPE_HELLO] >= 2 && seen[FB_TYPE_SENSOR_FRAME] >= 5 && seen[FB_TYPE_TRIGGER] >= 1 &&
              seen[FB_TYPE_HEARTBEAT] >= 2 && seen[FB_TYPE_ACK] >= 1 && pins[7] == 1 &&
              fb_decoder_errors(&decoder.stats) == 0;
    return ok ? 0 : 1;
}
