#include "fb_test.h"

int fb_test_failures = 0;
int fb_test_checks = 0;

typedef struct {
    const char *name;
    void (*run)(void);
} suite;

int main(void)
{
    static const suite suites[] = {
        {"codec", test_codec},
        {"golden", test_golden},
        {"decoder", test_decoder},
        {"session", test_session},
    };
    size_t i;
    for (i = 0; i < sizeof suites / sizeof suites[0]; ++i) {
        int before = fb_test_failures;
        suites[i].run();
        printf("%-8s %s\n", suites[i].name, fb_test_failures == before ? "ok" : "FAILED");
    }
    printf("%d checks, %d failures\n", fb_test_checks, fb_test_failures);
    return fb_test_failures == 0 ? 0 : 1;
}
