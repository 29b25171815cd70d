/* backup: `smsrules backup` and `smsrules restore` (see backup.h). */
#include "tools/backup.h"
#include "core/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "tools/cli.h"

/* The daemon's lock file in a data directory (store.c takes it the same way: an flock on the open
 * file, our pid in it). Holding it keeps a daemon from starting while the store is swapped. */
#define BACKUP_LOCK_FILE "smsrules.lock"

static const char usage_backup[] =
    "usage: smsrules backup [--data DIR] FILE\n"
    "\n"
    "Writes a consistent copy of the store in DIR (default ./data) to FILE while a daemon may be\n"
    "running on it: everything committed (every message answered 202) when the copy began, nothing\n"
    "after. The copy is compacted (free pages left out) and is itself a store file, data.mdb; it is\n"
    "written to FILE.tmp-PID and renamed to FILE once on disk, so FILE is never half written.\n"
    "FILE `-` writes the copy to the standard output instead (a pipe: compression, ssh).\n"
    "Put it back with `smsrules restore --data DIR FILE`.\n"
    "  -d, --data DIR   the data directory (default ./data)\n"
    "  -h, --help       this help\n"
    "Exit codes: 0 ok, 1 bad arguments or DIR holds no store, 2 the copy failed (disk full, I/O).\n";

static const char usage_restore[] =
    "usage: smsrules restore [--data DIR] FILE\n"
    "\n"
    "Puts a copy written by `smsrules backup` back as the store of DIR (default ./data; created\n"
    "when missing). Refuses while a daemon runs on DIR (stop it first), and refuses a FILE that\n"
    "does not open as a store (it is checked as a daemon's start would check it) without touching\n"
    "DIR. The store it replaces is kept as DIR/before-restore-TIME/data.mdb (delete it once the\n"
    "restored daemon runs as it should). Run as root, the restored file gets DIR's owner.\n"
    "FILE `-` reads the copy from the standard input.\n"
    "  -d, --data DIR   the data directory (default ./data)\n"
    "  -h, --help       this help\n"
    "Exit codes: 0 ok, 1 bad arguments or FILE is not a store, 2 a daemon holds DIR or I/O failed.\n";

/* Reads [--data DIR] FILE. Returns 0, or -1 with *code set (help shown, or a usage error). */
static int backup_parse(int argc, char **argv, const char *usage, const char **dir, const char **file, int *code) {
    static const struct option long_opts[] = {
        {"data", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    *dir = "./data";
    *file = NULL;
    opterr = 0;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, ":d:h", long_opts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            fputs(usage, stdout);
            *code = 0;
            return -1;
        case 'd': *dir = optarg; break;
        case ':': *code = sr_cli_usage_error(usage, "option '%s' needs a value", argv[optind - 1]); return -1;
        default: *code = sr_cli_usage_error(usage, "unknown option '%s'", argv[optind - 1]); return -1;
        }
    }
    if (optind != argc - 1) {
        *code = sr_cli_usage_error(usage, "%s", optind < argc ? "too many arguments" : "FILE is missing");
        return -1;
    }
    *file = argv[optind];
    if (!**dir || !**file) {
        *code = sr_cli_usage_error(usage, "%s", "empty DIR or FILE");
        return -1;
    }
    return 0;
}

/* fsync of the directory holding path (or of path itself when is_dir): makes a rename or a new
 * entry in it durable. */
static int backup_sync_dir(const char *path, int is_dir) {
    char copy[4096];
    sr_str_copy(copy, sizeof copy, path);
    int fd = open(is_dir ? copy : dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Copies the store to path through path.tmp-PID. Returns the exit code (message on stderr). */
static int backup_write(sr_store *store, const char *path) {
    char tmp[4096], err[8400];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        fprintf(stderr, "smsrules: path too long: %s\n", path);
        return 1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        fprintf(stderr, "smsrules: cannot create %s: %s\n", tmp, strerror(errno));
        return errno == ENOENT || errno == EACCES || errno == EISDIR ? 1 : 2;
    }
    int rc = sr_store_backup(store, fd, err, sizeof err);
    if (rc == 0 && fsync(fd) != 0) {
        snprintf(err, sizeof err, "cannot sync %s: %s", tmp, strerror(errno));
        rc = SR_E_IO;
    }
    if (close(fd) != 0 && rc == 0) {
        snprintf(err, sizeof err, "cannot write %s: %s", tmp, strerror(errno));
        rc = SR_E_IO;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        snprintf(err, sizeof err, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        rc = SR_E_IO;
    }
    if (rc != 0) {
        unlink(tmp);
        fprintf(stderr, "smsrules: backup failed: %s\n", err);
        return 2;
    }
    if (backup_sync_dir(path, 0) != 0) {
        fprintf(stderr, "smsrules: backup written, but syncing the folder of %s failed: %s\n", path, strerror(errno));
        return 2;
    }
    return 0;
}

/* LMDB makes DIR/lock.mdb when no process has it open. Run as root (a cron job, an admin) beside a
 * directory owned by the service user, it would be root's, and the daemon could not open it at its
 * next start: give it the directory's owner. */
static void backup_fix_lock_owner(const char *dir) {
    struct stat d, l;
    char path[4096];
    if (geteuid() != 0 || stat(dir, &d) != 0 || d.st_uid == 0) return;
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    if (lstat(path, &l) == 0 && S_ISREG(l.st_mode) && l.st_uid == 0 && chown(path, d.st_uid, d.st_gid) != 0)
        fprintf(stderr, "smsrules: warning: cannot give %s to the owner of %s: %s\n", path, dir, strerror(errno));
}

/* The copy to the standard output: no temporary file to rename, so a failure shows only in the exit
 * code (the reader must check it). Returns the exit code. */
static int backup_write_stdout(sr_store *store) {
    char err[512];
    if (isatty(STDOUT_FILENO)) {
        fprintf(stderr, "smsrules: the standard output is a terminal: give FILE, or pipe the copy somewhere\n");
        return 1;
    }
    if (sr_store_backup(store, STDOUT_FILENO, err, sizeof err) != 0) {
        fprintf(stderr, "smsrules: backup failed: %s\n", err);
        return 2;
    }
    /* A file behind the redirection is synced; a pipe cannot be (EINVAL), which is fine. */
    if (fsync(STDOUT_FILENO) != 0 && errno != EINVAL && errno != EROFS) {
        fprintf(stderr, "smsrules: cannot sync the standard output: %s\n", strerror(errno));
        return 2;
    }
    return 0;
}

/* Opens the store of dir read-only for a copy. Returns 0, or the exit code with a message on stderr. */
static int backup_open(const char *dir, sr_store **store) {
    char err[1024];
    struct stat st;
    snprintf(err, sizeof err, "%s/data.mdb", dir);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "smsrules: cannot read the store in %s: no data directory %s\n", dir, dir);
        return 1;
    }
    if (stat(err, &st) != 0 && errno == ENOENT) {
        fprintf(stderr, "smsrules: cannot read the store in %s: it holds no data.mdb (is it the daemon's --data?)\n",
                dir);
        return 1;
    }
    sr_store_options so = {.dir = dir, .read_only = 1};
    int rc = sr_store_open(store, NULL, &so, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "smsrules: cannot read the store in %s: %s\n", dir, err);
        return rc == SR_E_IO ? 2 : 1;
    }
    backup_fix_lock_owner(dir);
    return 0;
}

int sr_backup_main(int argc, char **argv) {
    const char *dir, *file;
    int code = 0;
    if (backup_parse(argc, argv, usage_backup, &dir, &file, &code) < 0) return code;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sr_store *store = NULL;
    code = backup_open(dir, &store);
    if (code != 0) return code;
    int to_stdout = strcmp(file, "-") == 0;
    code = to_stdout ? backup_write_stdout(store) : backup_write(store, file);
    sr_store_close(store);
    if (code != 0) return code;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    struct stat st;
    /* With the copy on the standard output, the summary goes to stderr. */
    if (to_stdout) fprintf(stderr, "backup of %s written to the standard output (%.0f ms)\n", dir, ms);
    else
        printf("backup of %s written to %s (%lld bytes, %.0f ms)\n", dir, file,
               stat(file, &st) == 0 ? (long long)st.st_size : -1LL, ms);
    return 0;
}

/* ---- restore ---- */

typedef struct restore_paths {
    char lock[4096];
    char staging[4096];     /* DIR/.restore-PID */
    char staged[4096];      /* DIR/.restore-PID/data.mdb */
    char staged_lock[4096]; /* DIR/.restore-PID/lock.mdb (LMDB's, made by the check) */
    char data[4096];        /* DIR/data.mdb */
    char env_lock[4096];    /* DIR/lock.mdb */
    char aside[4096];       /* DIR/before-restore-TIME */
} restore_paths;

static int restore_make_paths(restore_paths *p, const char *dir) {
    long pid = (long)getpid();
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    int too_long = snprintf(p->lock, sizeof p->lock, "%s/%s", dir, BACKUP_LOCK_FILE) >= (int)sizeof p->lock;
    too_long |= snprintf(p->staging, sizeof p->staging, "%s/.restore-%ld", dir, pid) >= (int)sizeof p->staging;
    too_long |= snprintf(p->staged, sizeof p->staged, "%s/data.mdb", p->staging) >= (int)sizeof p->staged;
    too_long |= snprintf(p->staged_lock, sizeof p->staged_lock, "%s/lock.mdb", p->staging) >= (int)sizeof p->staged;
    too_long |= snprintf(p->data, sizeof p->data, "%s/data.mdb", dir) >= (int)sizeof p->data;
    too_long |= snprintf(p->env_lock, sizeof p->env_lock, "%s/lock.mdb", dir) >= (int)sizeof p->env_lock;
    too_long |= snprintf(p->aside, sizeof p->aside, "%s/before-restore-%s", dir, stamp) >= (int)sizeof p->aside;
    return too_long ? -1 : 0;
}

/* Takes DIR's lock as a daemon would (creating DIR when missing). Returns the descriptor, or -1 with
 * the exit code in *code and a message on stderr. */
static int restore_lock(const char *dir, const char *lock_path, int *code) {
    *code = 2;
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        fprintf(stderr, "smsrules: cannot create the data directory %s: %s\n", dir, strerror(errno));
        return -1;
    }
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        fprintf(stderr, "smsrules: cannot open %s: %s\n", lock_path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char buf[32] = "";
        ssize_t n = errno == EWOULDBLOCK ? pread(fd, buf, sizeof buf - 1, 0) : -1;
        long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
        if (pid > 0)
            fprintf(stderr,
                    "smsrules: %s is in use by a running smsrules (pid %ld): stop it first (e.g. systemctl stop "
                    "smsrules), then restore; nothing was changed\n",
                    dir, pid);
        else
            fprintf(stderr, "smsrules: cannot lock %s (in use by another smsrules?): nothing was changed\n", dir);
        close(fd);
        return -1;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        /* Only the message a daemon started meanwhile prints lacks our pid; the lock holds. */
    }
    return fd;
}

/* Copies src to dst (created, 0640) and syncs it. Returns 0, or -1 with a message on stderr. */
static int restore_copy(const char *src, const char *dst) {
    int from_stdin = strcmp(src, "-") == 0;
    int in = from_stdin ? STDIN_FILENO : open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = -1;
    if (in < 0) {
        fprintf(stderr, "smsrules: cannot open %s: %s\n", src, strerror(errno));
        return -1;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (out < 0) {
        fprintf(stderr, "smsrules: cannot create %s: %s\n", dst, strerror(errno));
        goto done;
    }
    static char chunk[1 << 16];
    for (;;) {
        ssize_t n = read(in, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            fprintf(stderr, "smsrules: cannot read %s: %s\n", src, strerror(errno));
            goto done;
        }
        if (n == 0) break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, chunk + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                fprintf(stderr, "smsrules: cannot write %s: %s\n", dst, strerror(errno));
                goto done;
            }
            off += w;
        }
    }
    if (fsync(out) != 0) {
        fprintf(stderr, "smsrules: cannot sync %s: %s\n", dst, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (out >= 0 && close(out) != 0 && rc == 0) rc = -1;
    if (!from_stdin) close(in);
    return rc;
}

/* Opens the staged copy as a store, read-only, with every check a daemon's start makes. Returns 0,
 * or the exit code (1: not a store) with a message on stderr. */
static int restore_verify(const restore_paths *p, const char *file) {
    sr_store *store = NULL;
    char err[1024];
    sr_store_options so = {.dir = p->staging, .read_only = 1};
    int rc = sr_store_open(&store, NULL, &so, err, sizeof err);
    sr_store_close(store);
    unlink(p->staged_lock);
    if (rc == 0) return 0;
    /* The store names the staged path and advises on a damaged data directory; what matters here is
     * only what is wrong with FILE. */
    const char *why = strstr(err, " is damaged: ");
    char problem[1024];
    if (why) {
        why += strlen(" is damaged: ");
        const char *end = strstr(why, ". Stop smsrules");
        snprintf(problem, sizeof problem, "%.*s", end ? (int)(end - why) : (int)strlen(why), why);
    } else {
        sr_str_copy(problem, sizeof problem, err);
    }
    fprintf(stderr, "smsrules: %s is not a smsrules store (%s): nothing was changed\n", file, problem);
    return rc == SR_E_IO ? 2 : 1;
}

/* Keeps the current DIR/data.mdb (when there is one) as DIR/before-restore-TIME/data.mdb, by a hard
 * link: DIR/data.mdb itself stays until the rename replaces it. Sets *kept. Returns 0 or -1. */
static int restore_keep_old(restore_paths *p, int *kept) {
    *kept = 0;
    struct stat st;
    if (stat(p->data, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (mkdir(p->aside, 0750) != 0) {
        /* A second restore within the same second: the pid tells them apart. */
        if (errno != EEXIST) return -1;
        size_t len = strlen(p->aside);
        snprintf(p->aside + len, sizeof p->aside - len, "-%ld", (long)getpid());
        if (mkdir(p->aside, 0750) != 0) return -1;
    }
    char old[4200];
    snprintf(old, sizeof old, "%s/data.mdb", p->aside);
    if (link(p->data, old) != 0) {
        fprintf(stderr, "smsrules: cannot keep the old store as %s: %s\n", old, strerror(errno));
        return -1;
    }
    *kept = 1;
    return backup_sync_dir(p->aside, 1);
}

/* The swap: the staged file replaces DIR/data.mdb in one rename; LMDB's lock file of the old store
 * goes (the next open makes a fresh one); the restored file gets DIR's owner when we are root. */
static int restore_swap(const restore_paths *p, const char *dir) {
    if (rename(p->staged, p->data) != 0) {
        fprintf(stderr, "smsrules: cannot move the restored store into place: %s\n", strerror(errno));
        return -1;
    }
    if (unlink(p->env_lock) != 0 && errno != ENOENT)
        fprintf(stderr, "smsrules: warning: cannot remove %s: %s\n", p->env_lock, strerror(errno));
    struct stat st;
    if (geteuid() == 0 && stat(dir, &st) == 0) {
        if (chown(p->data, st.st_uid, st.st_gid) != 0 || chown(p->lock, st.st_uid, st.st_gid) != 0)
            fprintf(stderr, "smsrules: warning: cannot give %s to the owner of %s: %s\n", p->data, dir,
                    strerror(errno));
    }
    return backup_sync_dir(dir, 1);
}

static void restore_cleanup(const restore_paths *p) {
    unlink(p->staged);
    unlink(p->staged_lock);
    rmdir(p->staging);
}

int sr_restore_main(int argc, char **argv) {
    const char *dir, *file;
    int code = 0;
    if (backup_parse(argc, argv, usage_restore, &dir, &file, &code) < 0) return code;
    struct stat st;
    const char *name = strcmp(file, "-") == 0 ? "the standard input" : file; /* for the messages */
    if (strcmp(file, "-") == 0) {
        /* restore_copy reads it */
    } else if (stat(file, &st) != 0) {
        fprintf(stderr, "smsrules: cannot read %s: %s\n", file, strerror(errno));
        return 1;
    } else if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "smsrules: %s is not a file (give the file `smsrules backup` wrote)\n", file);
        return 1;
    }
    restore_paths p;
    if (restore_make_paths(&p, dir) != 0) return sr_cli_usage_error(usage_restore, "path too long: %s", dir);
    int lock_fd = restore_lock(dir, p.lock, &code);
    if (lock_fd < 0) return code;
    code = 2;
    int kept = 0;
    if (mkdir(p.staging, 0750) != 0) {
        fprintf(stderr, "smsrules: cannot create %s: %s\n", p.staging, strerror(errno));
        goto done;
    }
    if (restore_copy(file, p.staged) != 0) goto done;
    code = restore_verify(&p, name);
    if (code != 0) goto done;
    code = 2;
    if (restore_keep_old(&p, &kept) != 0) {
        fprintf(stderr, "smsrules: cannot set the old store aside in %s: %s\n", p.aside, strerror(errno));
        goto done;
    }
    if (restore_swap(&p, dir) != 0) goto done;
    code = 0;
    if (kept) printf("restored %s into %s; the store it replaced is %s/data.mdb\n", name, dir, p.aside);
    else
        printf("restored %s into %s (it held no store before)\n", name, dir);
done:
    restore_cleanup(&p);
    close(lock_fd); /* the lock goes last: a daemon may start from here on */
    return code;
}
