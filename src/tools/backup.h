/* backup: `smsrules backup` and `smsrules restore` — a hot copy of a data
 * directory's store, and putting one back.
 *
 * backup opens the store read-only beside whoever owns the directory (a
 * running daemon keeps running and accepting) and writes one compacted LMDB
 * file of what was committed when the copy began, through a temporary file
 * renamed into place once it is on disk.
 *
 * restore puts such a file back as DIR/data.mdb. It takes the directory's
 * lock first (so it refuses while a daemon runs there, and no daemon starts
 * while it works), copies the file into a staging folder inside DIR, opens
 * that copy read-only as a store (every check a daemon's start makes: the
 * file's meta pages, a walk of every database, the schema version) and only
 * then swaps it in with one rename, after hard-linking the data.mdb it
 * replaces into DIR/before-restore-TIME/. At every moment DIR/data.mdb is
 * either the old store or the new one, never missing or half written. */
#ifndef SR_BACKUP_H
#define SR_BACKUP_H

/* `smsrules backup ...`: argv[0] is "backup". Returns the exit code (0, 1 user error, 2 runtime). */
int sr_backup_main(int argc, char **argv);
/* `smsrules restore ...`: argv[0] is "restore". Returns the exit code: 1 for bad arguments or a FILE
 * that is not a store, 2 when a daemon holds DIR or on an I/O failure. */
int sr_restore_main(int argc, char **argv);

#endif
