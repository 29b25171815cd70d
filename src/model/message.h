/* message: the message record — its fields, its statuses, its ids, and its
 * encoding on disk and on the wire.
 *
 * A message is owned by whoever holds the sr_message; every string in it is
 * heap-allocated and owned by the message (sr_message_free releases all),
 * except in a copy made into an arena (sr_message_copy_in), which is only read.
 * On disk a record is one format byte followed by the message: compact binary
 * (SR_MESSAGE_FORMAT_BINARY, see message_record.h) or, in records written by
 * older versions, compact JSON (SR_MESSAGE_FORMAT_JSON); the decoder reads
 * both and meets a corrupt or unknown record with an error, never a crash.
 * Times are milliseconds since the Unix epoch in C and RFC 3339 UTC strings
 * in JSON. */
#ifndef SR_MESSAGE_H
#define SR_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"

#define SR_MESSAGE_FORMAT_JSON 1   /* the record of smsrules before the binary one: read, no longer written */
#define SR_MESSAGE_FORMAT_BINARY 2 /* message_record.h */
#define SR_MESSAGE_FORMAT SR_MESSAGE_FORMAT_BINARY /* what sr_message_encode writes */
#define SR_ID_LEN 26

/* Normalised statuses, one vocabulary for every provider. The order of the
 * enum is the forward order; the final ones share the last rank. */
typedef enum {
    SR_ST_ACCEPTED = 0,
    SR_ST_QUEUED,
    SR_ST_SENDING,
    SR_ST_SENT,
    SR_ST_DELIVERED,
    SR_ST_UNDELIVERED,
    SR_ST_EXPIRED,
    SR_ST_REJECTED,
    SR_ST_FAILED,
    SR_ST_COUNT
} sr_status;

const char *sr_status_name(sr_status s);
int sr_status_parse(const char *name); /* -1 when unknown */
int sr_status_is_final(sr_status s);   /* delivered, undelivered, expired, rejected, failed */
/* Forward-only rule for reports: 1 when moving from `from` to `to` is progress
 * (a higher rank; nothing leaves a final status). */
int sr_status_is_forward(sr_status from, sr_status to);

typedef struct sr_attempt {
    char *provider;
    char *provider_id; /* NULL until the provider answered with one */
    int64_t started_at_ms;
    int64_t duration_ms;
    int http_status;    /* 0 when no HTTP answer (timeout, connection error) */
    char *outcome;      /* "sending", "sent", "retry", "failed", "fallback", ... */
    char *error;        /* NULL when none */
    char *report;       /* the last delivery report's status for this attempt ("delivered", ...), NULL when none */
    char *part_reports; /* per-part reports of an earlier attempt, as sr_message.part_reports; NULL */
    int64_t reported_at_ms;
} sr_attempt;

typedef struct sr_history_entry {
    sr_status status;
    int64_t at_ms;
} sr_history_entry;

typedef struct sr_tag {
    char *key;
    char *value;
} sr_tag;

typedef struct sr_message {
    char id[SR_ID_LEN + 1];
    char *to;   /* E.164 */
    char *from; /* NULL: provider default sender */
    char *text;
    sr_status status;
    int segments;
    int encoding; /* sr_encoding from text.h: 0 gsm7, 1 ucs2 */
    char **route; /* provider names, tried in turn; route_len may be 0 (rules decide) */
    int route_len;
    int route_index; /* provider of the route in use */
    char *provider;  /* provider that carries (or carried) it, NULL before the first attempt */
    char *provider_id;
    char *idempotency_key;
    int priority; /* 0-3, 3 most urgent */
    int validity_s;
    int64_t created_at_ms;
    int64_t send_at_ms;         /* 0: at once */
    int64_t expires_at_ms;      /* (send_at or created_at) + validity */
    int64_t next_attempt_at_ms; /* when the scheduler may take it next; 0: at once */
    sr_tag *tags;
    int tag_count;
    sr_attempt *attempts;
    int attempt_count;
    sr_history_entry *history;
    int history_count;
    char *error;    /* last error, NULL when none */
    char *reply_to; /* id of the inbound message this replies to, or NULL */
    /* Delivery reports (the current attempt). */
    int parts;           /* parts the provider counts for it (0: unknown, taken as segments) */
    char *part_reports;  /* per-part final reports, one character each ('.' none, 'd', 'u', 'e', 'r'); NULL */
    int64_t sent_at_ms;  /* when the current provider accepted it */
    int64_t watch_at_ms; /* while sent: when to look at it next (a status poll or a report deadline); 0 none */
    int polls;           /* status polls made for the current attempt */
    int fallback_on;     /* bit (1 << status): reports that send it on to the next provider of the route */
    int dlr_timeout_s;   /* no final report this long after sent: on to the next provider (0: never) */
    double cost;         /* what the provider charged, from its reports; valid when has_cost */
    int has_cost;
} sr_message;

void sr_message_init(sr_message *m);
void sr_message_free(sr_message *m);
/* Deep copy; dst must be uninitialised or freed. */
void sr_message_copy(sr_message *dst, const sr_message *src);
/* Deep copy whose strings and arrays all live in arena: dst is read-only (never
 * sr_message_free'd, never changed through sr_message_set_str and the like) and
 * valid until the arena is reset or freed. One allocation per arena block
 * instead of one per string. */
void sr_message_copy_in(sr_message *dst, const sr_message *src, sr_arena *arena);
/* Replaces *slot with a copy of s (NULL allowed), freeing the old string. */
void sr_message_set_str(char **slot, const char *s);
/* Appends an attempt (strings copied) and returns it. */
sr_attempt *sr_message_add_attempt(sr_message *m, const char *provider, int64_t started_at_ms);
/* Sets the status and appends it to the history with the time. */
void sr_message_set_status(sr_message *m, sr_status s, int64_t at_ms);
/* Per-part report characters (sr_message.part_reports) and statuses: -1 / '.' for none. */
int sr_part_report_status(char c);
char sr_part_report_char(sr_status s);
/* When the scheduler may take the message: max(send_at, next_attempt_at). */
int64_t sr_message_due_ms(const sr_message *m);

/* Fills id with a new unique, time-ordered, URL-safe id (Crockford base32,
 * 26 characters, ULID layout: 48-bit ms time then 80 bits that increase
 * monotonically within one millisecond, so ids made together sort together). */
void sr_id_new(char id[SR_ID_LEN + 1], int64_t now_ms);
int sr_id_valid(const char *s, size_t len);

/* Record encoding: appends the current record (SR_MESSAGE_FORMAT) of m. */
void sr_message_encode(const sr_message *m, sr_buf *out);
/* Decodes a record of either format into m (initialised here). Returns 0, or
 * -1 for a corrupt or unknown record (m is left empty and safe to free). */
int sr_message_decode(const char *data, size_t len, sr_message *m);
/* The JSON record (format byte SR_MESSAGE_FORMAT_JSON), as older versions wrote
 * it: for tests and tools that make or read such records. */
void sr_message_encode_json(const sr_message *m, sr_buf *out);
int sr_message_decode_json(const char *data, size_t len, sr_message *m);
/* The message as the HTTP API shows it (DESIGN.md "a message reads"). */
void sr_message_to_api_json(const sr_message *m, sr_buf *out);

/* RFC 3339 helpers. */
void sr_time_rfc3339(int64_t ms, sr_buf *out);                         /* "2026-11-23T04:28:30.123Z" */
int sr_time_parse_rfc3339(const char *s, size_t len, int64_t *ms_out); /* 0 or -1 */
/* Days since 1970-01-01 of a proleptic Gregorian date (month 1-12; H. Hinnant's days_from_civil). */
int64_t sr_days_from_civil(int64_t y, int m, int d);
int64_t sr_now_ms(void); /* wall clock (CLOCK_REALTIME), unless the virtual clock below is in use */
/* The virtual clock, for the offline test runner (`smsrules test`) only; the
 * daemon never calls these. sr_clock_freeze stops the clock at the current
 * time: sr_now_ms() then reads that time until sr_clock_advance_ms moves it
 * forward by delta_ms (ignored when not positive). Advancing a running clock
 * puts it that far ahead of the wall clock. */
void sr_clock_freeze(void);
void sr_clock_advance_ms(int64_t delta_ms);
/* Stops the clock at at_ms (simulate: every run starts at the same moment). */
void sr_clock_freeze_at(int64_t at_ms);

#endif
