/* phone_data: the prefix tables generated from Debian's python3-phonenumbers
 * (scripts/gen-phone-data.py) for what libphonenumber's C++ library has no
 * mapper for: the time zones and the original carrier of a number range.
 * Internal to phone.cc. */
#ifndef SR_PHONE_DATA_H
#define SR_PHONE_DATA_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* key and value are offsets of NUL-terminated strings in the blob; key is a
 * prefix of E.164 digits (no '+'); entries are sorted by key (strcmp). */
typedef struct {
    uint32_t key;
    uint32_t value;
} sr_phone_prefix_entry;

typedef struct {
    const char *blob;
    const sr_phone_prefix_entry *entries;
    uint32_t count;
} sr_phone_prefix_map;

/* Values: zone names joined by '&' ("Europe/Guernsey&Europe/London"). */
extern const sr_phone_prefix_map sr_phone_time_zones_map;
/* Values: one carrier name in English. */
extern const sr_phone_prefix_map sr_phone_carriers_map;
/* Keys: country calling codes; values: the national prefix the code's main
 * region strips from a number when parsing it (its national_prefix_for_parsing):
 * "" none, a digit string, or "?" when it is a pattern. */
extern const sr_phone_prefix_map sr_phone_national_prefix_map;

#ifdef __cplusplus
}
#endif

#endif
