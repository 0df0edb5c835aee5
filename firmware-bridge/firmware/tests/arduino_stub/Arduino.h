/* Minimal host stand-in for the Arduino API, enough to compile, link and smoke-run the sketch. */
#ifndef ARDUINO_STUB_H
#define ARDUINO_STUB_H

#include <stddef.h>
#include <stdint.h>

#define HIGH 1
#define LOW 0
#define INPUT 0
#define OUTPUT 1
#define INPUT_PULLUP 2
#define FALLING 2
#define LED_BUILTIN 13
#define A0 14
#define A1 15
#define A2 16

unsigned long millis(void);
unsigned long micros(void);
void pinMode(uint8_t pin, uint8_t mode);
void digitalWrite(uint8_t pin, uint8_t value);
int digitalRead(uint8_t pin);
int analogRead(uint8_t pin);
int digitalPinToInterrupt(uint8_t pin);
void attachInterrupt(int irq, void (*isr)(void), int mode);

class HardwareSerialStub {
public:
    void begin(unsigned long baud);
    int available();
    int read();
    int availableForWrite();
    /* Like a real UART driver: blocks (advances the simulated clock) when the FIFO is full. */
    size_t write(const uint8_t *data, size_t len);
};

extern HardwareSerialStub Serial;

void setup();
void loop();

/* Board hook the sketch calls to reset into the vendor bootloader (ENTER_BOOTLOADER). */
void board_reset_to_bootloader(void);

#endif
