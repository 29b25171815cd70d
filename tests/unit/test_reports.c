/* Unit tests of reports.c's entry check: impossible part numbers are refused. */
#include <string.h>

#include "delivery/reports.h"
#include "store/store.h"
#include "unit.h"

static int check_parts(int part, int parts) {
    sr_report rep;
    memset(&rep, 0, sizeof rep);
    rep.part = part;
    rep.parts = parts;
    char err[160];
    err[0] = '\0';
    int rc = sr_reports_check(&rep, err, sizeof err);
    if (rc != 0 && !err[0]) UNIT_FAIL("refused without a reason");
    return rc;
}

TEST(possible_parts_pass) {
    CHECK_INT(check_parts(0, 0), 0); /* the whole message */
    CHECK_INT(check_parts(0, 3), 0); /* the whole message, with its part count */
    CHECK_INT(check_parts(2, 0), 0); /* a part; the count is the message's (checked when applied) */
    CHECK_INT(check_parts(1, 3), 0);
    CHECK_INT(check_parts(3, 3), 0);
    CHECK_INT(check_parts(255, 255), 0);
}

TEST(impossible_parts_are_refused) {
    CHECK_INT(check_parts(SR_REPORT_PART_INVALID, 3), SR_E_INVALID); /* "abc", 0, -1, 1.5 as the adapter gives them */
    CHECK_INT(check_parts(1, SR_REPORT_PART_INVALID), SR_E_INVALID);
    CHECK_INT(check_parts(-5, 3), SR_E_INVALID);
    CHECK_INT(check_parts(7, 3), SR_E_INVALID);
    CHECK_INT(check_parts(4, 3), SR_E_INVALID);
    CHECK_INT(check_parts(1, 256), SR_E_INVALID);
    CHECK_INT(check_parts(256, 0), SR_E_INVALID);
    CHECK_INT(check_parts(1, 2147483647), SR_E_INVALID);
    sr_report rep;
    memset(&rep, 0, sizeof rep);
    rep.part = 7;
    rep.parts = 3;
    char err[160];
    sr_reports_check(&rep, err, sizeof err);
    CHECK_STR(err, "the report is for part 7 of 3");
}
