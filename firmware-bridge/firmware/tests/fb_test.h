/* Minimal test harness for the firmware-bridge host tests. */
#ifndef FB_TEST_H
#define FB_TEST_H

#include <stdio.h>

extern int fb_test_failures;
extern int fb_test_checks;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        fb_test_checks++;                                                              \
        if (!(cond)) {                                                                 \
            fb_test_failures++;                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
        }                                                                              \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                             \
    do {                                                                               \
        long fb_a_ = (long)(a);                                                        \
        long fb_b_ = (long)(b);                                                        \
        fb_test_checks++;                                                              \
        if (fb_a_ != fb_b_) {                                                          \
            fb_test_failures++;                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%ld != %ld)\n", __FILE__,  \
                    __LINE__, #a, #b, fb_a_, fb_b_);                                   \
        }                                                                              \
    } while (0)

/* Test suites (one per file) */
void test_codec(void);
void test_golden(void);
void test_decoder(void);
void test_session(void);

#endif /* FB_TEST_H */
