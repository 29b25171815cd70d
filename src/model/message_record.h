/* message_record: the message as the store keeps it on disk.
 *
 * A record starts with one format byte. Format 2 (SR_MESSAGE_FORMAT_BINARY,
 * what sr_message_encode writes) is compact binary: the fields in a fixed
 * order, integers as LEB128 varints (signed ones zigzag), strings as a varint
 * of length + 1 (0: NULL) then the bytes, the cost as an IEEE double. It is
 * several times cheaper to read and write than format 1 (SR_MESSAGE_FORMAT_JSON:
 * the message as compact JSON, written by smsrules before the binary record),
 * which sr_message_decode still reads so that a data directory of an older
 * version serves every message unchanged; a record is rewritten in format 2
 * the first time it changes.
 *
 * Both formats hold the same message: the binary encoder normalises what the
 * JSON one did (numbers clamped to what the decoder accepts, invalid UTF-8
 * replaced by U+FFFD, a tag key written twice kept once, reported_at dropped
 * with no report, a cost that is not a finite number within +-1e15 dropped),
 * so a message reads back the same through either. A record of format 2 must
 * hold exactly its fields: a short, long or out-of-range one is corrupt. A
 * later change of the layout takes a new format byte and keeps these readers.
 * Pure functions: no I/O, no global state. */
#ifndef SR_MESSAGE_RECORD_H
#define SR_MESSAGE_RECORD_H

#include <stddef.h>

#include "core/buf.h"
#include "model/message.h"

/* Appends the format byte and the binary record of m. */
void sr_record_encode_binary(const sr_message *m, sr_buf *out);
/* Decodes a format-2 record (format byte included) into m (initialised here;
 * strings and arrays malloc'd, released by sr_message_free). Returns 0, or -1
 * for anything that is not exactly one valid record (m is left empty). */
int sr_record_decode_binary(const char *data, size_t len, sr_message *m);

#endif
