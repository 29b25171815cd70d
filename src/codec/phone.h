/* phone: reading phone numbers as people and providers write them, with the
 * numbering plans of every country (Google's libphonenumber, C++, wrapped by
 * phone.cc behind this C interface).
 *
 * Owns the one rule for which numbers smsrules sends to (sr_phone_normalize)
 * and what the rules can learn about a number (sr_phone_parse: country, type,
 * time zones, carrier, location). A number written nationally is read with
 * the trunk prefix, lengths and ranges of the default country, never by
 * gluing digits to a calling code, so "(415) 555-1234" with default "1" is
 * +14155551234 and a number that cannot be one of that country's numbers is
 * refused with the reason instead of going to another country.
 *
 * default_country (borrowed, may be NULL or ""): a country calling code of
 * digits ("1", "7", "44": its main region's national formats are read, and a
 * valid number of any region sharing the code is taken, e.g. Canada for "1",
 * Kazakhstan for "7") or an ISO 3166 region code ("US", "gb").
 *
 * Every input is a byte range that need not be NUL-terminated; nothing here
 * keeps state between calls except libphonenumber's own read-only metadata. */
#ifndef SR_PHONE_H
#define SR_PHONE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Size of an E.164 number: '+', at most 15 digits, NUL. */
#define SR_PHONE_MAX 17
/* Room for the reasons written to a why buffer. */
#define SR_PHONE_WHY_MAX 160

typedef struct {
    char e164[SR_PHONE_MAX]; /* "+14155551234" */
    char region[4];          /* "US"; "001" for non-geographic (+800...); "" when unknown */
    int calling_code;        /* 1 */
    const char *type;        /* static: "mobile", "fixed_line", "fixed_line_or_mobile",
                                "toll_free",      "premium_rate", "shared_cost", "voip",
                                "personal_number", "pager",      "uan", "voicemail" or "unknown" */
    int valid;               /* a number of an assigned range of its country's plan */
    int possible;            /* its length fits its country's plan */
    int geographic;          /* tied to a place (fixed lines; mobiles in some countries) */
    char extension[24];      /* digits after "ext.", "x", "#", ...; "" for none */
} sr_phone_info;

/* Checks default_country (the forms above) and writes nothing when it is
 * usable (returns 0); otherwise returns -EINVAL and writes why. NULL or ""
 * is usable: no default country. */
int sr_phone_country_check(const char *default_country, char *why, size_t why_size);

/* Reads in[0..len) as a phone number: "+CC ...", "00CC ..." and the default
 * country's national and international-dialling forms, with separators, a
 * "(0)" after the calling code and an extension. Without a default country a
 * number without '+' or "00" is read as international without its '+' (the
 * form providers send). Returns 0 and fills out for any input that is a
 * number of some country, valid or not; returns -EINVAL and writes why ("too
 * short", "letters in it", ...) for text that cannot be read as a number. */
int sr_phone_parse(const char *in, size_t len, const char *default_country, sr_phone_info *out, char *why,
                   size_t why_size);

/* The rule for a number smsrules sends to or keys state by. Accepts:
 *   - a valid number (sr_phone_info.valid), written in any form;
 *   - a number written with its calling code ('+' or an international
 *     dialling prefix) whose length fits its country's plan, even in a range
 *     the library's metadata does not know (yet): the sender said which
 *     country, so it cannot go elsewhere, and refusing it would refuse new
 *     ranges that the metadata lags behind.
 * A number written without its calling code must be valid for the default
 * country's code: there the country is our guess, and a number outside the
 * plan is more likely another country's number without its '+'. Numbers with
 * an extension are refused (an SMS cannot reach an extension). Returns 0 and
 * writes the E.164 form to out, or returns -EINVAL, writes "" to out and the
 * reason to why ("too short for US (+1)", "not a valid number for RU (+7)").
 * why may be NULL. */
int sr_phone_normalize(const char *in, size_t len, const char *default_country, char out[SR_PHONE_MAX], char *why,
                       size_t why_size);

/* Like sr_phone_normalize, for numbers received from a provider (inbound
 * senders and recipients), which most providers write as international
 * without the '+'. A number of digits only is read as the default country's
 * when it is a valid number of it without a trunk prefix ("4155551234" with
 * default 1); else as international without its '+' when that is valid
 * ("447400123456"; "84912345678" with default 7 is Vietnam, not "8 491..."
 * in Russia); else as sr_phone_normalize reads it. */
int sr_phone_normalize_received(const char *in, size_t len, const char *default_country, char out[SR_PHONE_MAX]);

/* The IANA time zones of the number's area, joined by '&'
 * ("America/Los_Angeles", "Europe/Guernsey&...&Europe/London": several for a
 * country or an area that spans zones), from libphonenumber's prefix data:
 * a geographic number by its longest known prefix, others by their country.
 * Static string; NULL when unknown (e.g. for a number that is not valid). */
const char *sr_phone_time_zones(const sr_phone_info *info);

/* The carrier the number's range was allotted to, in English, for mobile
 * numbers (a ported number keeps its original carrier here); NULL when
 * unknown. Static string. */
const char *sr_phone_carrier(const sr_phone_info *info);

/* Where the number is, in English ("San Francisco, CA", "Moscow", or the
 * country's name), from libphonenumber's offline geocoder; writes "" when
 * unknown. */
void sr_phone_location(const sr_phone_info *info, char *out, size_t out_size);

/* The country calling code of an E.164 number ("+84912345678" -> 84), from
 * libphonenumber's list of codes, or 0 when e164 does not start with '+' and
 * a known code. Cheap: no parsing of the rest of the number. */
int sr_phone_calling_code(const char *e164);

/* libphonenumber's example mobile number of the main region of a country
 * calling code (84 → "+84912345678"), for simulated traffic: 0, or -EINVAL
 * when the code has no region or no example. */
int sr_phone_example_mobile(int calling_code, char out[SR_PHONE_MAX]);

#ifdef __cplusplus
}
#endif

#endif
