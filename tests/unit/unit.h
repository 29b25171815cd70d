/* unit: the project's own tiny unit-test runner.
 *
 * A test file defines tests with TEST(name) { ... } and links with unit.c,
 * which provides main(): every test runs in its own forked process with a
 * timeout (UNIT_TIMEOUT_S, default 10 s), so a crash or a hang fails only that
 * test. Output: one line "PASS file:name" or "FAIL file:name: reason" per test.
 * Run one test with `./test_x NAME`. */
#ifndef SR_UNIT_H
#define SR_UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void unit_register(const char *name, void (*fn)(void));

#define TEST(name)                                                                                                     \
    static void name(void);                                                                                            \
    __attribute__((constructor)) static void unit_reg_##name(void) { unit_register(#name, name); }                     \
    static void name(void)

#define UNIT_FAIL(...)                                                                                                 \
    do {                                                                                                               \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                                                \
        fprintf(stderr, __VA_ARGS__);                                                                                  \
        fputc('\n', stderr);                                                                                           \
        exit(1);                                                                                                       \
    } while (0)

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) UNIT_FAIL("check failed: %s", #cond);                                                             \
    } while (0)

#define CHECK_INT(a, b)                                                                                                \
    do {                                                                                                               \
        long long unit_a = (long long)(a), unit_b = (long long)(b);                                                    \
        if (unit_a != unit_b) UNIT_FAIL("%s == %lld, expected %s == %lld", #a, unit_a, #b, unit_b);                    \
    } while (0)

#define CHECK_STR(a, b)                                                                                                \
    do {                                                                                                               \
        const char *unit_a = (a), *unit_b = (b);                                                                       \
        if (!unit_a || !unit_b || strcmp(unit_a, unit_b) != 0)                                                         \
            UNIT_FAIL("%s == \"%s\", expected \"%s\"", #a, unit_a ? unit_a : "(null)", unit_b ? unit_b : "(null)");    \
    } while (0)

#endif
