// phone: the C interface of phone.h over libphonenumber (C++). Nothing
// here throws: libphonenumber reports errors by return values, and the only
// allocations are small std::strings (an allocation failure aborts, as
// everywhere else in smsrules).
#include "codec/phone.h"
#include "core/buf.h"

#include <cctype>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <phonenumbers/geocoding/phonenumber_offline_geocoder.h>
#include <phonenumbers/logger.h>
#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>
#include <unicode/locid.h>

#include "codec/phone_data.h"
extern "C" {
#include "codec/text.h"
}

using i18n::phonenumbers::NullLogger;
using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberOfflineGeocoder;
using i18n::phonenumbers::PhoneNumberUtil;

namespace {

// libphonenumber refuses longer inputs itself; saying so first gives a clear
// reason.
const size_t kMaxInput = 250;

PhoneNumberUtil *phone_util() {
    // The library's singleton; its default logger would print parse details
    // on stdout, which is the CLI's and the test runner's output.
    static PhoneNumberUtil *util = [] {
        PhoneNumberUtil *u = PhoneNumberUtil::GetInstance();
        u->SetLogger(new NullLogger());
        return u;
    }();
    return util;
}

void phone_why(char *why, size_t why_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void phone_why(char *why, size_t why_size, const char *fmt, ...) {
    if (!why || why_size == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_size, fmt, ap);
    va_end(ap);
}

// The default country resolved to the region whose national formats are
// read ("ZZ": none) and its calling code.
struct phone_country {
    std::string region = "ZZ";
    int code = 0;
};

int phone_country_lookup(const char *dc, phone_country *c, char *why, size_t why_size) {
    c->region = "ZZ";
    c->code = 0;
    if (!dc || !*dc) return 0;
    size_t n = strnlen(dc, 8);
    if (n <= 3 && strspn(dc, "0123456789") == n && dc[0] != '0') {
        int code = atoi(dc);
        std::string region;
        phone_util()->GetRegionCodeForCountryCode(code, &region);
        if (region == "ZZ") {
            phone_why(why, why_size, "+%d is not a country calling code", code);
            return -EINVAL;
        }
        if (region == "001") {
            phone_why(why, why_size, "+%d is a non-geographic calling code, without national numbers", code);
            return -EINVAL;
        }
        c->region = region;
        c->code = code;
        return 0;
    }
    if (n == 2 && isalpha((unsigned char)dc[0]) && isalpha((unsigned char)dc[1])) {
        std::string region = {(char)toupper((unsigned char)dc[0]), (char)toupper((unsigned char)dc[1])};
        int code = phone_util()->GetCountryCodeForRegion(region);
        if (code == 0) {
            phone_why(why, why_size, "'%s' is not a region code with a numbering plan", region.c_str());
            return -EINVAL;
        }
        c->region = region;
        c->code = code;
        return 0;
    }
    phone_why(why, why_size,
              "must be a country calling code like \"44\" or a region code like "
              "\"GB\"");
    return -EINVAL;
}

// phone_country_lookup, remembering the last default country that resolved:
// a daemon names the same one for every message, and looking it up again (a
// std::string, libphonenumber's map) costs about what the E.164 fast path does.
int phone_country_resolve(const char *dc, phone_country *c, char *why, size_t why_size) {
    thread_local std::string last_dc;
    thread_local phone_country last;
    thread_local bool have_last = false;
    if (have_last && dc && last_dc == dc) {
        *c = last;
        return 0;
    }
    int rc = phone_country_lookup(dc, c, why, why_size);
    if (rc == 0 && dc) {
        last_dc = dc;
        last = *c;
        have_last = true;
    }
    return rc;
}

// "GB (+44)": the main region of a calling code, or the default country's
// region when the number was read with it.
std::string phone_place(int code, const phone_country &country) {
    std::string region = country.region;
    if (code != country.code) phone_util()->GetRegionCodeForCountryCode(code, &region);
    char buf[32];
    if (region == "ZZ" || region == "001") snprintf(buf, sizeof buf, "+%d", code);
    else
        snprintf(buf, sizeof buf, "%s (+%d)", region.c_str(), code);
    return buf;
}

const char *phone_type_name(PhoneNumberUtil::PhoneNumberType t) {
    switch (t) {
    case PhoneNumberUtil::FIXED_LINE: return "fixed_line";
    case PhoneNumberUtil::MOBILE: return "mobile";
    case PhoneNumberUtil::FIXED_LINE_OR_MOBILE: return "fixed_line_or_mobile";
    case PhoneNumberUtil::TOLL_FREE: return "toll_free";
    case PhoneNumberUtil::PREMIUM_RATE: return "premium_rate";
    case PhoneNumberUtil::SHARED_COST: return "shared_cost";
    case PhoneNumberUtil::VOIP: return "voip";
    case PhoneNumberUtil::PERSONAL_NUMBER: return "personal_number";
    case PhoneNumberUtil::PAGER: return "pager";
    case PhoneNumberUtil::UAN: return "uan";
    case PhoneNumberUtil::VOICEMAIL: return "voicemail";
    default: return "unknown";
    }
}

// What any number's text must be before libphonenumber reads it; *letters
// says whether it has letters (allowed only to mark an extension).
static int phone_check_text(const char *in, size_t len, bool *letters, char *why, size_t why_size) {
    if (len > kMaxInput) {
        phone_why(why, why_size, "longer than %zu bytes", kMaxInput);
        return -1;
    }
    if (len && memchr(in, '\0', len)) {
        phone_why(why, why_size, "contains a NUL byte");
        return -1;
    }
    if (!sr_utf8_valid(in, len)) {
        phone_why(why, why_size, "not valid UTF-8");
        return -1;
    }
    bool started = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x20 || c == 0x7F) {
            phone_why(why, why_size, "contains control characters");
            return -1;
        }
        if (isalpha(c)) *letters = true;
        // libphonenumber skips what precedes a '+'; a '+' after anything but
        // spaces means the text is not one number.
        if (c == '+' && started) {
            phone_why(why, why_size, "'+' is allowed only at the start");
            return -1;
        }
        if (c != ' ') started = true;
    }
    return 0;
}

// Why libphonenumber refused the text, in words (assumed_plus: we put the '+' there).
static void phone_parse_error(PhoneNumberUtil::ErrorType err, bool assumed_plus, char *why, size_t why_size) {
    switch (err) {
    case PhoneNumberUtil::INVALID_COUNTRY_CODE_ERROR:
        if (assumed_plus)
            phone_why(why, why_size,
                      "no country calling code (\"+CC...\") and no default_country "
                      "to read it with");
        else
            phone_why(why, why_size, "no known country calling code after '+'");
        return;
    case PhoneNumberUtil::TOO_SHORT_AFTER_IDD:
        phone_why(why, why_size, "too short after the international prefix");
        return;
    case PhoneNumberUtil::TOO_SHORT_NSN: phone_why(why, why_size, "too short"); return;
    case PhoneNumberUtil::TOO_LONG_NSN: phone_why(why, why_size, "too long"); return;
    default: phone_why(why, why_size, "not a phone number"); return;
    }
}

// Reads in[0..len) into num. *explicit_code says whether the input named its
// calling code itself ('+' or an international dialling prefix), as opposed
// to the default country's code or a '+' we assumed.
int phone_read(const char *in, size_t len, const phone_country &country, PhoneNumber *num, bool *explicit_code,
               char *why, size_t why_size) {
    *explicit_code = false;
    if (!in && len) len = 0;
    bool letters = false;
    if (phone_check_text(in, len, &letters, why, why_size) != 0) return -EINVAL;
    std::string s(in ? in : "", len);
    size_t start = s.find_first_not_of(" \t");
    bool assumed_plus = false;
    if (start != std::string::npos && s.compare(start, 2, "00") == 0) {
        // "00" is the international prefix nearly everywhere and what API
        // clients write; in the few countries dialling abroad otherwise (011
        // in North America) no national number starts with 00.
        s.replace(start, 2, "+");
    } else if (country.region == "ZZ" && start != std::string::npos && isdigit((unsigned char)s[start])) {
        // No default country: digits are an international number without its '+'.
        s.insert(start, "+");
        assumed_plus = true;
    }
    PhoneNumberUtil::ErrorType err = phone_util()->ParseAndKeepRawInput(s, country.region, num);
    if (err != PhoneNumberUtil::NO_PARSING_ERROR) {
        phone_parse_error(err, assumed_plus, why, why_size);
        return -EINVAL;
    }
    // libphonenumber reads letters as a keypad ("1-800-FLOWERS"); a number
    // to send to is digits, with letters only to mark an extension.
    if (letters && !num->has_extension()) {
        phone_why(why, why_size, "has letters in it");
        return -EINVAL;
    }
    std::string e164;
    phone_util()->Format(*num, PhoneNumberUtil::E164, &e164);
    if (e164.size() >= SR_PHONE_MAX) {
        phone_why(why, why_size, "too long: more than 15 digits");
        return -EINVAL;
    }
    PhoneNumber::CountryCodeSource src = num->country_code_source();
    *explicit_code =
        !assumed_plus && (src == PhoneNumber::FROM_NUMBER_WITH_PLUS_SIGN || src == PhoneNumber::FROM_NUMBER_WITH_IDD);
    return 0;
}

void phone_fill(const PhoneNumber &num, sr_phone_info *out) {
    memset(out, 0, sizeof *out);
    std::string e164, region;
    phone_util()->Format(num, PhoneNumberUtil::E164, &e164);
    sr_str_copy(out->e164, sizeof out->e164, e164.c_str());
    phone_util()->GetRegionCodeForNumber(num, &region);
    if (region != "ZZ") sr_str_copy(out->region, sizeof out->region, region.c_str());
    out->calling_code = num.country_code();
    out->valid = phone_util()->IsValidNumber(num);
    out->possible = phone_util()->IsPossibleNumber(num);
    PhoneNumberUtil::PhoneNumberType type = phone_util()->GetNumberType(num);
    out->type = phone_type_name(type);
    out->geographic = out->valid && phone_util()->IsNumberGeographical(type, num.country_code());
    if (num.has_extension()) sr_str_copy(out->extension, sizeof out->extension, num.extension().c_str());
}

// The value of the longest key of map that is a prefix of digits and at
// least min_len long, or NULL.
const char *phone_prefix_lookup(const sr_phone_prefix_map &map, const char *digits, size_t min_len) {
    char key[SR_PHONE_MAX];
    size_t n = strnlen(digits, sizeof key - 1);
    for (; n > 0 && n >= min_len; n--) {
        memcpy(key, digits, n);
        key[n] = '\0';
        uint32_t lo = 0, hi = map.count;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            int cmp = strcmp(map.blob + map.entries[mid].key, key);
            if (cmp == 0) return map.blob + map.entries[mid].value;
            if (cmp < 0) lo = mid + 1;
            else
                hi = mid;
        }
    }
    return NULL;
}

// Parses an E.164 string made by phone_fill back into a PhoneNumber.
bool phone_from_info(const sr_phone_info *info, PhoneNumber *num) {
    return info->e164[0] == '+' && phone_util()->Parse(info->e164, "ZZ", num) == PhoneNumberUtil::NO_PARSING_ERROR;
}

} // namespace

extern "C" int sr_phone_country_check(const char *default_country, char *why, size_t why_size) {
    phone_country c;
    return phone_country_resolve(default_country, &c, why, why_size);
}

extern "C" int sr_phone_parse(const char *in, size_t len, const char *default_country, sr_phone_info *out, char *why,
                              size_t why_size) {
    memset(out, 0, sizeof *out);
    out->type = "unknown";
    phone_country country;
    char cwhy[SR_PHONE_WHY_MAX];
    if (phone_country_resolve(default_country, &country, cwhy, sizeof cwhy) != 0) {
        phone_why(why, why_size, "default country %s", cwhy);
        return -EINVAL;
    }
    PhoneNumber num;
    bool explicit_code;
    if (phone_read(in, len, country, &num, &explicit_code, why, why_size) != 0) return -EINVAL;
    phone_fill(num, out);
    return 0;
}

namespace {

// The fast path for a number already written in E.164 ("+" and 8 to 15
// digits, what API clients mostly send): libphonenumber's Parse spends ~8 µs
// in ICU regular expressions on extraction, extensions and prefixes that such
// a string cannot have. This builds the same PhoneNumber Parse would —
// the calling code is the shortest prefix of 1 to 3 digits that is assigned
// (Parse's rule) and the rest is the national number — but only where Parse
// would strip nothing more: the national number does not start with 0 (no
// leading-zero flags) and the code's main region strips no national prefix
// from it (none, or a literal the number does not start with; a pattern
// takes the full path). Returns true with the number when sr_phone_normalize
// takes it; false sends the caller to the full path, which also says why a
// number is wrong.
bool phone_e164_fast(const char *in, size_t len, PhoneNumber *num) {
    if (len < 9 || len > 16 || in[0] != '+' || in[1] < '1' || in[1] > '9') return false;
    for (size_t i = 1; i < len; i++)
        if (in[i] < '0' || in[i] > '9') return false;
    const char *digits = in + 1;
    size_t ndigits = len - 1;
    int code = sr_phone_calling_code(in);
    if (!code) return false;
    size_t code_len = code < 10 ? 1 : code < 100 ? 2 : 3;
    const char *national = digits + code_len;
    size_t national_len = ndigits - code_len;
    if (national_len < 2 || national[0] == '0') return false;
    char key[4];
    memcpy(key, digits, code_len);
    key[code_len] = '\0';
    const char *prefix = phone_prefix_lookup(sr_phone_national_prefix_map, key, code_len);
    if (!prefix || strcmp(prefix, "?") == 0) return false;
    size_t prefix_len = strlen(prefix);
    if (prefix_len && national_len >= prefix_len && memcmp(national, prefix, prefix_len) == 0) return false;
    uint64_t nn = 0;
    for (size_t i = 0; i < national_len; i++) nn = nn * 10 + (uint64_t)(national[i] - '0');
    num->Clear();
    num->set_country_code(code);
    num->set_national_number(nn);
    // Of a possible length for its country (a number that names its calling
    // code is taken then, see phone.h), or valid, as the full path decides.
    // The length check first: it reads the metadata's lengths, while
    // IsValidNumber runs ICU regular expressions (~1-2 µs).
    return phone_util()->IsPossibleNumberWithReason(*num) == PhoneNumberUtil::IS_POSSIBLE ||
           phone_util()->IsValidNumber(*num);
}

} // namespace

extern "C" int sr_phone_normalize(const char *in, size_t len, const char *default_country, char out[SR_PHONE_MAX],
                                  char *why, size_t why_size) {
    out[0] = '\0';
    phone_country country;
    char cwhy[SR_PHONE_WHY_MAX];
    if (phone_country_resolve(default_country, &country, cwhy, sizeof cwhy) != 0) {
        phone_why(why, why_size, "default country %s", cwhy);
        return -EINVAL;
    }
    {
        PhoneNumber fast;
        if (phone_e164_fast(in, len, &fast)) {
            memcpy(out, in, len);
            out[len] = '\0';
            return 0;
        }
    }
    PhoneNumber num;
    bool explicit_code;
    if (phone_read(in, len, country, &num, &explicit_code, why, why_size) != 0) return -EINVAL;
    if (num.has_extension()) {
        phone_why(why, why_size, "has an extension (%.20s), which an SMS cannot reach", num.extension().c_str());
        return -EINVAL;
    }
    if (!phone_util()->IsValidNumber(num)) {
        std::string place = phone_place(num.country_code(), country);
        switch (phone_util()->IsPossibleNumberWithReason(num)) {
        case PhoneNumberUtil::IS_POSSIBLE:
            if (explicit_code) break; // see phone.h: the sender named the country
            phone_why(why, why_size, "not a valid number for %s", place.c_str());
            return -EINVAL;
        case PhoneNumberUtil::IS_POSSIBLE_LOCAL_ONLY:
            phone_why(why, why_size, "too short for %s: a local number without its area code", place.c_str());
            return -EINVAL;
        case PhoneNumberUtil::INVALID_COUNTRY_CODE:
            phone_why(why, why_size, "no known country calling code +%d", num.country_code());
            return -EINVAL;
        case PhoneNumberUtil::TOO_SHORT: phone_why(why, why_size, "too short for %s", place.c_str()); return -EINVAL;
        case PhoneNumberUtil::TOO_LONG: phone_why(why, why_size, "too long for %s", place.c_str()); return -EINVAL;
        default: phone_why(why, why_size, "wrong length for %s", place.c_str()); return -EINVAL;
        }
    }
    std::string e164;
    phone_util()->Format(num, PhoneNumberUtil::E164, &e164);
    sr_str_copy(out, SR_PHONE_MAX, e164.c_str());
    return 0;
}

extern "C" int sr_phone_normalize_received(const char *in, size_t len, const char *default_country,
                                           char out[SR_PHONE_MAX]) {
    bool digits = len > 0 && len <= kMaxInput && in[0] >= '1' && in[0] <= '9';
    for (size_t i = 0; digits && i < len; i++)
        if (in[i] < '0' || in[i] > '9') digits = false;
    if (!digits) return sr_phone_normalize(in, len, default_country, out, NULL, 0);
    // Digits only. A valid national number of the default country written
    // as its bare significant number ("4155551234" with default 1) is taken
    // as such; otherwise international without its '+', the form most
    // providers send ("447400123456"; "84912345678" is Vietnam, not "8 491"
    // in Russia: providers do not send trunk prefixes); otherwise whatever
    // the default country's reading accepts.
    phone_country country;
    PhoneNumber num;
    bool explicit_code;
    std::string nsn;
    if (phone_country_resolve(default_country, &country, NULL, 0) == 0 && country.region != "ZZ" &&
        phone_read(in, len, country, &num, &explicit_code, NULL, 0) == 0 && phone_util()->IsValidNumber(num) &&
        !num.has_extension()) {
        phone_util()->GetNationalSignificantNumber(num, &nsn);
        if (nsn == std::string(in, len)) return sr_phone_normalize(in, len, default_country, out, NULL, 0);
    }
    std::string e164;
    if (phone_util()->Parse("+" + std::string(in, len), "ZZ", &num) == PhoneNumberUtil::NO_PARSING_ERROR &&
        phone_util()->IsValidNumber(num)) {
        phone_util()->Format(num, PhoneNumberUtil::E164, &e164);
        if (e164.size() < SR_PHONE_MAX) {
            sr_str_copy(out, SR_PHONE_MAX, e164.c_str());
            return 0;
        }
    }
    return sr_phone_normalize(in, len, default_country, out, NULL, 0);
}

extern "C" const char *sr_phone_time_zones(const sr_phone_info *info) {
    if (!info->valid || info->e164[0] != '+') return NULL;
    if (info->geographic) return phone_prefix_lookup(sr_phone_time_zones_map, info->e164 + 1, 1);
    // Not tied to a place (toll-free, most mobiles): the zones of the whole
    // country.
    char code[8];
    snprintf(code, sizeof code, "%d", info->calling_code);
    return phone_prefix_lookup(sr_phone_time_zones_map, code, strlen(code));
}

extern "C" const char *sr_phone_carrier(const sr_phone_info *info) {
    if (!info->valid || !info->type) return NULL;
    // Only mobile ranges are allotted to a carrier (libphonenumber's carrier
    // mapper does the same).
    if (strcmp(info->type, "mobile") != 0 && strcmp(info->type, "fixed_line_or_mobile") != 0 &&
        strcmp(info->type, "pager") != 0)
        return NULL;
    return phone_prefix_lookup(sr_phone_carriers_map, info->e164 + 1, 1);
}

extern "C" void sr_phone_location(const sr_phone_info *info, char *out, size_t out_size) {
    if (out_size) out[0] = '\0';
    PhoneNumber num;
    if (!info->valid || !phone_from_info(info, &num)) return;
    static PhoneNumberOfflineGeocoder *geocoder = new PhoneNumberOfflineGeocoder();
    std::string where = geocoder->GetDescriptionForNumber(num, icu::Locale("en"));
    sr_str_copy(out, out_size, where.c_str());
}

extern "C" int sr_phone_calling_code(const char *e164) {
    if (!e164 || e164[0] != '+') return 0;
    // Calling codes are prefix-free: the first of the 1-, 2- and 3-digit
    // prefixes that is assigned (a region, or "001", non-geographic) is the
    // one, as libphonenumber's Parse reads it. Route statistics ask this for
    // every event: what libphonenumber says of each code is kept.
    static unsigned char known[1000]; // 0 not asked yet, 1 a code, 2 not one
    int code = 0;
    for (int i = 1; i <= 3; i++) {
        char c = e164[i];
        if (c < '0' || c > '9') return 0;
        code = code * 10 + (c - '0');
        if (!known[code]) {
            std::string region;
            phone_util()->GetRegionCodeForCountryCode(code, &region);
            known[code] = region != "ZZ" ? 1 : 2;
        }
        if (known[code] == 1) return code;
    }
    return 0;
}

extern "C" int sr_phone_example_mobile(int calling_code, char out[SR_PHONE_MAX]) {
    out[0] = '\0';
    std::string region;
    phone_util()->GetRegionCodeForCountryCode(calling_code, &region);
    if (region.empty() || region == "ZZ") return -EINVAL;
    PhoneNumber num;
    // Some plans have no separate mobile ranges: any valid number stands in.
    if (!phone_util()->GetExampleNumberForType(region, PhoneNumberUtil::MOBILE, &num) &&
        !phone_util()->GetExampleNumberForType(region, PhoneNumberUtil::FIXED_LINE_OR_MOBILE, &num) &&
        !phone_util()->GetExampleNumber(region, &num))
        return -EINVAL;
    std::string e164;
    phone_util()->Format(num, PhoneNumberUtil::E164, &e164);
    if (e164.size() >= SR_PHONE_MAX) return -EINVAL;
    sr_str_copy(out, SR_PHONE_MAX, e164.c_str());
    return 0;
}
