/* core/buf: sr_str_copy, the bounded string copy every fixed-size field is filled with. */
#include "core/buf.h"
#include "unit.h"

TEST(str_copy_copies_whole_strings_that_fit) {
    char d[8];
    sr_str_copy(d, sizeof d, "abc");
    CHECK_STR(d, "abc");
    sr_str_copy(d, sizeof d, "1234567"); /* 7 bytes and the NUL: exactly the size */
    CHECK_STR(d, "1234567");
}

TEST(str_copy_cuts_to_fit_and_always_terminates) {
    char d[8];
    memset(d, 'x', sizeof d);
    sr_str_copy(d, sizeof d, "0123456789");
    CHECK_STR(d, "0123456");
    char one[1] = {'x'};
    sr_str_copy(one, sizeof one, "abc");
    CHECK_INT(one[0], 0);
}

TEST(str_copy_takes_null_as_empty_and_leaves_a_zero_size_alone) {
    char d[4] = "abc";
    sr_str_copy(d, sizeof d, NULL);
    CHECK_STR(d, "");
    char e[4] = "abc";
    sr_str_copy(e, 0, "zz");
    CHECK_STR(e, "abc");
}
