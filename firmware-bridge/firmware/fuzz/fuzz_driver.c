/* Stand-alone driver for fb_fuzz_session.c without libFuzzer: golden frames (build/golden_frames.h),
 * concatenated and mutated by a fixed-seed PRNG, plus random bytes. Usage: fuzz_smoke [iterations]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden_frames.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t rng_state = 0x12345678u;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

int main(int argc, char **argv)
{
    static uint8_t input[8192];
    long iterations = argc > 1 ? atol(argv[1]) : 20000;
    long n;
    for (n = 0; n < iterations; ++n) {
        size_t len = 1;
        int frames = (int)(rnd() % 6u);
        int k;
        input[0] = (uint8_t)rnd();
        for (k = 0; k < frames; ++k) {
            const golden_case *c = &golden_cases[rnd() % GOLDEN_COUNT];
            if (len + c->wire_len + 1 > sizeof input) {
                break;
            }
            input[len++] = (uint8_t)rnd(); /* chunking / clock byte */
            memcpy(input + len, c->wire, c->wire_len);
            len += c->wire_len;
        }
        if (frames == 0) {
            size_t extra = rnd() % 512u;
            for (k = 0; k < (int)extra; ++k) {
                input[len++] = (uint8_t)rnd();
            }
        }
        for (k = (int)(rnd() % 8u); k > 0 && len > 1; --k) { /* mutations */
            size_t at = 1 + rnd() % (uint32_t)(len - 1);
            input[at] = (uint8_t)(rnd() % 3u == 0 ? 0u : rnd());
        }
        LLVMFuzzerTestOneInput(input, len);
    }
    printf("fuzz smoke: %ld inputs, no crash, no invariant violated\n", iterations);
    return 0;
}
