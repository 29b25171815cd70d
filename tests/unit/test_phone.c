/* Unit tests for src/codec/phone.cc: numbers as people write them in each country,
 * read with the default country's numbering plan, to E.164 or to a refusal
 * with its reason; what sms.phone reports about a number. */
#include <errno.h>
#include <stdint.h>

#include "codec/phone.h"
#include "unit.h"

typedef struct {
    const char *country; /* default_country; NULL for none */
    const char *in;
    const char *e164; /* NULL: refused */
    const char *why;  /* for a refusal: a part of the reason */
} phone_case;

static void phone_check_cases(const phone_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const phone_case *c = &cases[i];
        char out[SR_PHONE_MAX];
        char why[SR_PHONE_WHY_MAX] = "";
        memset(out, 'x', sizeof out);
        int rc = sr_phone_normalize(c->in, strlen(c->in), c->country, out, why, sizeof why);
        const char *cc = c->country ? c->country : "none";
        if (c->e164) {
            if (rc != 0) UNIT_FAIL("\"%s\" (default %s) refused (%s), expected %s", c->in, cc, why, c->e164);
            if (strcmp(out, c->e164) != 0) UNIT_FAIL("\"%s\" (default %s) is %s, expected %s", c->in, cc, out, c->e164);
        } else {
            if (rc == 0) UNIT_FAIL("\"%s\" (default %s) accepted as %s, expected a refusal", c->in, cc, out);
            if (out[0] != '\0') UNIT_FAIL("\"%s\": out is \"%s\" after a refusal", c->in, out);
            if (!strstr(why, c->why))
                UNIT_FAIL("\"%s\" (default %s): reason \"%s\" lacks \"%s\"", c->in, cc, why, c->why);
        }
    }
}

#define CHECK_CASES(...)                                                                                               \
    do {                                                                                                               \
        static const phone_case cases[] = {__VA_ARGS__};                                                               \
        phone_check_cases(cases, sizeof cases / sizeof cases[0]);                                                      \
    } while (0)

/* ---- the issue: numbers that went to the wrong country ----------------- */

TEST(phone_nanp_national_forms_stay_in_nanp) {
    CHECK_CASES({"1", "(415) 555-1234", "+14155551234", NULL}, /* was +4155551234, Switzerland */
                {"1", "4155551234", "+14155551234", NULL}, {"1", "415.555.1234", "+14155551234", NULL},
                {"1", "1 (415) 555-1234", "+14155551234", NULL}, /* trunk prefix 1 */
                {"1", "+1 415 555 1234", "+14155551234", NULL},
                {"1", "011 44 7400 123456", "+447400123456", NULL}, /* North American international prefix */
                {"1", "555-1234", NULL, "a local number without its area code"},
                {"1", "84912345678", NULL, "too long for US (+1)"}, /* not +84: no '+' */
                {"1", "415555123", NULL, "too short for US (+1)"});
}

TEST(phone_nanp_other_regions_of_the_code) {
    /* Canada (New Brunswick) and Jamaica with default "1" read with US formats. */
    CHECK_CASES({"1", "(506) 234-5678", "+15062345678", NULL}, {"1", "876-512-3456", "+18765123456", NULL},
                {"CA", "506 234 5678", "+15062345678", NULL}, {"US", "(415) 555-1234", "+14155551234", NULL});
}

TEST(phone_russia_and_kazakhstan) {
    CHECK_CASES({"7", "89121234567", "+79121234567", NULL}, /* was +89121234567 */
                {"7", "8 (912) 123-45-67", "+79121234567", NULL},
                {"7", "9121234567", "+79121234567", NULL}, /* was +9121234567, India */
                {"7", "+7 912 123-45-67", "+79121234567", NULL},
                {"7", "79121234567", "+79121234567", NULL},     /* with the code, without '+' */
                {"7", "8 495 123-45-67", "+74951234567", NULL}, /* Moscow fixed line */
                {"7", "8 800 555-35-35", "+78005553535", NULL}, /* toll free */
                {"7", "8 701 234 5678", "+77012345678", NULL},  /* Kazakhstan, same code */
                {"KZ", "8 701 234 5678", "+77012345678", NULL},
                {"7", "8 10 44 7400 123456", "+447400123456", NULL}, /* Russian international prefix 8~10 */
                {"7", "8912123456", NULL, "RU (+7)"}, {"7", "891212345678", NULL, "wrong length for RU (+7)"});
}

TEST(phone_united_kingdom) {
    CHECK_CASES({"44", "+44 (0)7400 123456", "+447400123456", NULL}, /* the (0) is the trunk prefix */
                {"44", "+44 (0)7700 900123", "+447700900123", NULL}, /* was +4407700900123 */
                {"44", "07400 123456", "+447400123456", NULL}, {"44", "020 7946 0958", "+442079460958", NULL},
                {"44", "0044 7400 123456", "+447400123456", NULL}, {"GB", "07400 123456", "+447400123456", NULL},
                {"44", "07400 12345", NULL, "GB (+44)"}, {"44", "07400 1234567", NULL, "too long for GB (+44)"});
}

TEST(phone_germany_france_italy) {
    CHECK_CASES({"49", "030 123456", "+4930123456", NULL}, {"49", "0151 23456789", "+4915123456789", NULL},
                {"49", "+49 (0)30 1234567", "+49301234567", NULL}, {"DE", "0151 2345 6789", "+4915123456789", NULL},
                {"33", "06 12 34 56 78", "+33612345678", NULL}, {"33", "+33 (0)6 12 34 56 78", "+33612345678", NULL},
                {"33", "01 23 45 67 89", "+33123456789", NULL}, {"33", "06 12 34 56", NULL, "too short for FR (+33)"},
                /* Italy keeps the 0 of fixed lines in the number; mobiles have none. */
                {"39", "06 1234 5678", "+390612345678", NULL}, {"39", "312 345 6789", "+393123456789", NULL},
                {"39", "+39 06 1234 5678", "+390612345678", NULL}, {"39", "0039 312 345 6789", "+393123456789", NULL});
}

TEST(phone_vietnam_india_brazil) {
    CHECK_CASES({"84", "091 234 5678", "+84912345678", NULL}, {"84", "+84 (0)91 234 5678", "+84912345678", NULL},
                {"84", "024 3825 6789", "+842438256789", NULL},
                {"84", "0912 345", NULL, "not a valid number for VN (+84)"},
                {"91", "098765 43210", "+919876543210", NULL}, {"91", "9876543210", "+919876543210", NULL},
                {"91", "+91 98765 43210", "+919876543210", NULL}, {"91", "011 2345 6789", "+911123456789", NULL},
                {"55", "(11) 96123-4567", "+5511961234567", NULL}, {"55", "011 96123 4567", "+5511961234567", NULL},
                {"55", "+55 11 96123-4567", "+5511961234567", NULL}, {"55", "0 21 2123 4567", "+552121234567", NULL});
}

TEST(phone_extensions_refused) {
    CHECK_CASES({"1", "+1 415-555-1234 ext. 56", NULL, "extension (56)"},
                {"1", "(415) 555-1234 x56", NULL, "extension (56)"},
                {"49", "+49 30 12345678 ext 12", NULL, "extension (12)"},
                {"44", "020 7946 0958 #123", NULL, "extension (123)"});
}

/* ---- the rule for numbers the metadata does not know ------------------- */

TEST(phone_possible_accepted_only_with_the_calling_code) {
    /* 555 is no US area code in the plan: with '+1' the sender said where
     * it goes; nationally it is refused, since the country is our guess. */
    CHECK_CASES({NULL, "+15550001111", "+15550001111", NULL}, {"1", "+1 555 000 1111", "+15550001111", NULL},
                {"7", "00 1 555 000 1111", "+15550001111", NULL},
                {"1", "(555) 000-1111", NULL, "not a valid number for US (+1)"},
                {"1", "1 555 000 1111", NULL, "not a valid number for US (+1)"},
                /* Without a default country, digits are international without '+': a guess, so valid only. */
                {NULL, "15550001111", NULL, "not a valid number"});
}

TEST(phone_no_default_country) {
    CHECK_CASES({NULL, "+84912345678", "+84912345678", NULL}, {NULL, "0084 91 234 5678", "+84912345678", NULL},
                {NULL, "84912345678", "+84912345678", NULL}, /* the form providers send */
                {"", "84912345678", "+84912345678", NULL}, {NULL, "0912345678", NULL, "no country calling code"},
                {NULL, "+999 1234 5678", NULL, "no known country calling code"});
}

TEST(phone_malformed_refused) {
    CHECK_CASES({"1", "", NULL, "not a phone number"}, {"1", "   ", NULL, "not a phone number"},
                {"1", "+", NULL, "not a phone number"}, {"1", "abc", NULL, "not a phone number"},
                {"1", "1-800-FLOWERS", NULL, "letters"}, {"1", "+1 415 555 1234 call me", NULL, "letters"},
                {"1", "1+4155551234", NULL, "'+' is allowed only at the start"},
                {"1", "++14155551234", NULL, "'+' is allowed only at the start"},
                {"1", "+1\t4155551234", NULL, "control characters"}, {NULL, "+1234567890123456789", NULL, "too long"},
                {NULL, "+1234567", NULL, "too short"});
    char out[SR_PHONE_MAX], why[SR_PHONE_WHY_MAX];
    static const char with_nul[] = "+1415\0"
                                   "5551234";
    CHECK_INT(sr_phone_normalize(with_nul, sizeof with_nul - 1, "1", out, why, sizeof why), -EINVAL);
    CHECK(strstr(why, "NUL") != NULL);
    CHECK_INT(sr_phone_normalize("+1415\xff", 6, "1", out, why, sizeof why), -EINVAL);
    CHECK(strstr(why, "UTF-8") != NULL);
    char many[300];
    memset(many, '9', sizeof many);
    CHECK_INT(sr_phone_normalize(many, sizeof many, "1", out, why, sizeof why), -EINVAL);
    CHECK_INT(sr_phone_normalize(NULL, 0, "1", out, NULL, 0), -EINVAL);
}

TEST(phone_reads_only_len_bytes) {
    static const char longer[] = "+141555512349999";
    char out[SR_PHONE_MAX];
    CHECK_INT(sr_phone_normalize(longer, 12, NULL, out, NULL, 0), 0);
    CHECK_STR(out, "+14155551234");
}

TEST(phone_default_country_checked) {
    char why[SR_PHONE_WHY_MAX];
    CHECK_INT(sr_phone_country_check("1", why, sizeof why), 0);
    CHECK_INT(sr_phone_country_check("84", why, sizeof why), 0);
    CHECK_INT(sr_phone_country_check("gb", why, sizeof why), 0);
    CHECK_INT(sr_phone_country_check(NULL, why, sizeof why), 0);
    CHECK_INT(sr_phone_country_check("999", why, sizeof why), -EINVAL);
    CHECK(strstr(why, "not a country calling code"));
    CHECK_INT(sr_phone_country_check("800", why, sizeof why), -EINVAL);
    CHECK(strstr(why, "non-geographic"));
    CHECK_INT(sr_phone_country_check("XX", why, sizeof why), -EINVAL);
    CHECK_INT(sr_phone_country_check("+44", why, sizeof why), -EINVAL);
    CHECK_INT(sr_phone_country_check("0044", why, sizeof why), -EINVAL);
    char out[SR_PHONE_MAX];
    CHECK_INT(sr_phone_normalize("4155551234", 10, "999", out, why, sizeof why), -EINVAL);
    CHECK(strstr(why, "default country"));
}

/* ---- numbers received from providers ----------------------------------- */

TEST(phone_received_numbers) {
    char out[SR_PHONE_MAX];
    /* International without '+', as most providers send: taken when valid. */
    CHECK_INT(sr_phone_normalize_received("447400123456", 12, "1", out), 0);
    CHECK_STR(out, "+447400123456");
    CHECK_INT(sr_phone_normalize_received("84912345678", 11, "7", out), 0);
    CHECK_STR(out, "+84912345678");
    /* A bare national number of the default country stays there (+41 55 551 23 4 is Swiss too). */
    CHECK_INT(sr_phone_normalize_received("4155551234", 10, "1", out), 0);
    CHECK_STR(out, "+14155551234");
    /* Trunk prefixes only when the international reading is no number. */
    CHECK_INT(sr_phone_normalize_received("89121234567", 11, "7", out), 0);
    CHECK_STR(out, "+79121234567");
    /* Short codes and alphanumeric senders are not numbers. */
    CHECK_INT(sr_phone_normalize_received("12345", 5, "1", out), -EINVAL);
    CHECK_INT(sr_phone_normalize_received("MyShop", 6, "1", out), -EINVAL);
}

/* ---- what sms.phone reports -------------------------------------------- */

TEST(phone_parse_reports_country_type_and_zones) {
    sr_phone_info info;
    char why[SR_PHONE_WHY_MAX];
    CHECK_INT(sr_phone_parse("(415) 555-1234", 14, "1", &info, why, sizeof why), 0);
    CHECK_STR(info.e164, "+14155551234");
    CHECK_STR(info.region, "US");
    CHECK_INT(info.calling_code, 1);
    CHECK_STR(info.type, "fixed_line_or_mobile");
    CHECK_INT(info.valid, 1);
    CHECK_INT(info.possible, 1);
    CHECK_STR(sr_phone_time_zones(&info), "America/Los_Angeles");
    char where[80];
    sr_phone_location(&info, where, sizeof where);
    CHECK_STR(where, "San Francisco, CA");

    CHECK_INT(sr_phone_parse("8 701 234 5678", 14, "7", &info, why, sizeof why), 0);
    CHECK_STR(info.e164, "+77012345678");
    CHECK_STR(info.region, "KZ");
    CHECK_STR(info.type, "mobile");
    CHECK_STR(sr_phone_carrier(&info), "Kcell/Activ");

    CHECK_INT(sr_phone_parse("020 7946 0958", 13, "GB", &info, why, sizeof why), 0);
    CHECK_STR(info.type, "fixed_line");
    CHECK_STR(sr_phone_time_zones(&info), "Europe/London");
    CHECK(sr_phone_carrier(&info) == NULL); /* fixed lines have no carrier here */

    CHECK_INT(sr_phone_parse("+84 91 234 5678", 15, NULL, &info, why, sizeof why), 0);
    CHECK_STR(info.region, "VN");
    CHECK_STR(info.type, "mobile");
    CHECK_STR(sr_phone_carrier(&info), "Vinaphone");
    CHECK_STR(sr_phone_time_zones(&info), "Asia/Bangkok");

    /* Possible but not in the plan: parsed, valid false, nothing more known. */
    CHECK_INT(sr_phone_parse("+1 555 000 1111", 15, NULL, &info, why, sizeof why), 0);
    CHECK_STR(info.e164, "+15550001111");
    CHECK_STR(info.region, "");
    CHECK_INT(info.valid, 0);
    CHECK_INT(info.possible, 1);
    CHECK_STR(info.type, "unknown");
    CHECK(sr_phone_time_zones(&info) == NULL);

    CHECK_INT(sr_phone_parse("+1 415 555 1234 ext. 7", 22, NULL, &info, why, sizeof why), 0);
    CHECK_STR(info.extension, "7");

    CHECK_INT(sr_phone_parse("hello", 5, "1", &info, why, sizeof why), -EINVAL);
    CHECK_STR(why, "not a phone number");
}

/* The fast path for E.164 input ("+" and digits) must agree with the full
 * parse, which a space after the first digit forces (libphonenumber drops
 * the space): same acceptance, same E.164. Seeded random numbers over every
 * calling code's neighbourhood, with the national-prefix and leading-zero
 * cases the fast path hands on. */
TEST(phone_e164_fast_path_agrees_with_the_full_parse) {
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    int accepted = 0;
    for (int i = 0; i < 60000; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t r = seed >> 11;
        char fast[24], full[26];
        int code = (int)(r % 999) + 1;
        int national_len = 4 + (int)((r >> 10) % 10);
        int n = snprintf(fast, sizeof fast, "+%d", code);
        for (int k = 0; k < national_len && n < 16; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            /* Leading digits 0, 1 and 8 more often: the national prefixes. */
            int d = (int)((seed >> 33) % 13);
            fast[n++] = (char)('0' + (k == 0 && d >= 10 ? (d == 10 ? 0 : d == 11 ? 1 : 8) : d % 10));
        }
        fast[n] = '\0';
        snprintf(full, sizeof full, "+%c %s", fast[1], fast + 2);
        const char *countries[] = {NULL, "1", "7", "44", "84"};
        const char *dc = countries[i % 5];
        char out_fast[SR_PHONE_MAX], out_full[SR_PHONE_MAX];
        char why_fast[SR_PHONE_WHY_MAX] = "", why_full[SR_PHONE_WHY_MAX] = "";
        int rc_fast = sr_phone_normalize(fast, strlen(fast), dc, out_fast, why_fast, sizeof why_fast);
        int rc_full = sr_phone_normalize(full, strlen(full), dc, out_full, why_full, sizeof why_full);
        if (rc_fast != rc_full)
            UNIT_FAIL("\"%s\" %s (%s) but \"%s\" %s (%s)", fast, rc_fast ? "refused" : "accepted", why_fast, full,
                      rc_full ? "refused" : "accepted", why_full);
        if (rc_fast == 0 && strcmp(out_fast, out_full) != 0)
            UNIT_FAIL("\"%s\" is %s but \"%s\" is %s", fast, out_fast, full, out_full);
        if (rc_fast == 0) accepted++;
    }
    if (accepted < 1000) UNIT_FAIL("only %d of the random numbers were accepted: the test says little", accepted);
}

/* simulate's traffic: an example mobile number per calling code, valid and a mobile. */
TEST(phone_example_mobile_numbers) {
    static const int codes[] = {84, 7, 1, 44, 49, 86, 91, 234};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        char out[SR_PHONE_MAX];
        CHECK_INT(sr_phone_example_mobile(codes[i], out), 0);
        sr_phone_info info;
        CHECK_INT(sr_phone_parse(out, strlen(out), NULL, &info, NULL, 0), 0);
        CHECK(info.valid);
        CHECK_INT(info.calling_code, codes[i]);
        CHECK(strcmp(info.type, "mobile") == 0 || strcmp(info.type, "fixed_line_or_mobile") == 0);
    }
    char out[SR_PHONE_MAX];
    CHECK(sr_phone_example_mobile(999, out) != 0); /* no country has it */
    CHECK_STR(out, "");
}
