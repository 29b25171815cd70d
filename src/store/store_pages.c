/* The page check of the store's start-up walk: see store_pages.h.
 *
 * LMDB 0.9, 64-bit, little-endian on-disk layout (lmdb's mdb.c: MDB_page, MDB_node):
 *   page header (16 bytes): pgno (8), pad (2), flags (2), lower (2), upper (2); an overflow page
 *     keeps its page count (4) where lower and upper are;
 *   node pointers: (lower - 16) / 2 offsets of 2 bytes from byte 16, each to a node in the page;
 *   node (8 bytes, then key, then data): lo (2), hi (2), flags (2), key size (2). A branch node's
 *     child page is lo | hi << 16 | flags << 32; a leaf node's data size is lo | hi << 16, its data
 *     an 8-byte overflow page number when flags has BIGDATA, an MDB_db (48 bytes, root at 40) when
 *     it has SUBDATA.
 * The cursor walk in store.c reads every entry through LMDB; this reads the pages themselves, which
 * is what tells a page both in a tree and in the free list (the damage LMDB trusts until a write
 * touches it). */
#include "store/store_pages.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGES_HEADER 16
#define PAGES_NODE 8
#define PAGES_BRANCH 0x01
#define PAGES_LEAF 0x02
#define PAGES_OVERFLOW 0x04
/* The kind bits of a page's flags (dirty, loose and keep are in-memory states, not kinds). */
#define PAGES_KINDS 0x6f
#define PAGES_BIGDATA 0x01
#define PAGES_SUBDATA 0x02
#define PAGES_DUPDATA 0x04
#define PAGES_DB_LEN 48
#define PAGES_MAX_DEPTH 64

typedef struct pages_walk {
    const sr_store_pages *pg;
    uint8_t *seen; /* a bit per page: in a tree (or a meta page) */
    char *problem;
    size_t len;
} pages_walk;

/* Marks count pages from n as in use: -1 when one is outside the snapshot or was reached before. */
static int pages_mark(pages_walk *w, uint64_t n, uint64_t count) {
    if (n < 2 || count == 0 || n > w->pg->last_pg || count > w->pg->last_pg - n + 1) {
        snprintf(w->problem, w->len, "a tree points at page %" PRIu64 ", outside the file's pages", n);
        return -1;
    }
    for (uint64_t i = n; i < n + count; i++) {
        if (w->seen[i >> 3] & (1u << (i & 7))) {
            snprintf(w->problem, w->len, "page %" PRIu64 " is reached twice in its trees", i);
            return -1;
        }
        w->seen[i >> 3] |= (uint8_t)(1u << (i & 7));
    }
    return 0;
}

/* Page n as a page of the kind wanted (its header says its number and that kind), marked; NULL with
 * the problem set otherwise. */
static const unsigned char *pages_get(pages_walk *w, uint64_t n, unsigned kind) {
    if (pages_mark(w, n, 1) != 0) return NULL;
    const unsigned char *p = w->pg->map + n * w->pg->psize;
    if (sr_store_rd64(p) != n || (sr_store_rd16(p + 10) & PAGES_KINDS) != kind) {
        snprintf(w->problem, w->len, "page %" PRIu64 " is not the page its tree expects", n);
        return NULL;
    }
    return p;
}

/* The data of a big leaf value: its overflow pages, marked. */
static int pages_overflow(pages_walk *w, uint64_t n, uint64_t dsize) {
    const unsigned char *p = pages_get(w, n, PAGES_OVERFLOW);
    if (!p) return -1;
    uint64_t count = sr_store_rd32(p + 12);
    if (count == 0 || dsize > count * w->pg->psize - PAGES_HEADER) {
        snprintf(w->problem, w->len, "overflow page %" PRIu64 " has a bad page count", n);
        return -1;
    }
    return count > 1 ? pages_mark(w, n + 1, count - 1) : 0;
}

static int pages_tree(pages_walk *w, uint64_t n, int main_db, int depth);

/* Node i of page p (n): its offset, checked to lie in the page with its key (and, in a leaf, its
 * data unless on overflow pages); 0 or -1. */
static int pages_node(pages_walk *w, const unsigned char *p, uint64_t n, unsigned i, unsigned upper, size_t *off) {
    uint64_t psize = w->pg->psize;
    size_t o = sr_store_rd16(p + PAGES_HEADER + 2 * i);
    if (o < upper || o + PAGES_NODE > psize || o + PAGES_NODE + sr_store_rd16(p + o + 6) > psize) {
        snprintf(w->problem, w->len, "page %" PRIu64 " has a node outside it", n);
        return -1;
    }
    *off = o;
    return 0;
}

/* A leaf's node at off: its big value's overflow pages, or in the main database a named database's tree. */
static int pages_leaf_node(pages_walk *w, const unsigned char *p, uint64_t n, size_t off, int main_db, int depth) {
    const unsigned char *node = p + off;
    unsigned flags = sr_store_rd16(node + 4);
    size_t data = off + PAGES_NODE + sr_store_rd16(node + 6);
    uint64_t dsize = sr_store_rd16(node) | (uint64_t)sr_store_rd16(node + 2) << 16;
    if (flags & PAGES_DUPDATA) {
        snprintf(w->problem, w->len, "page %" PRIu64 " has a node with duplicates in a plain database", n);
        return -1;
    }
    if (flags & PAGES_BIGDATA) {
        if (data + 8 > w->pg->psize) goto outside;
        return pages_overflow(w, sr_store_rd64(p + data), dsize);
    }
    if (data + dsize > w->pg->psize) goto outside;
    if (!(flags & PAGES_SUBDATA)) return 0;
    if (!main_db || dsize < PAGES_DB_LEN) {
        snprintf(w->problem, w->len, "page %" PRIu64 " has a bad database record", n);
        return -1;
    }
    uint64_t root = sr_store_rd64(p + data + 40);
    return root == UINT64_MAX ? 0 : pages_tree(w, root, 0, depth + 1);
outside:
    snprintf(w->problem, w->len, "page %" PRIu64 " has a value outside it", n);
    return -1;
}

/* The tree under page n (a branch or a leaf); main_db: the main database's, whose SUBDATA leaves
 * hold the named databases. */
static int pages_tree(pages_walk *w, uint64_t n, int main_db, int depth) {
    if (depth > PAGES_MAX_DEPTH) {
        snprintf(w->problem, w->len, "a tree is deeper than %d pages", PAGES_MAX_DEPTH);
        return -1;
    }
    if (pages_mark(w, n, 1) != 0) return -1;
    const unsigned char *p = w->pg->map + n * w->pg->psize;
    unsigned kind = sr_store_rd16(p + 10) & PAGES_KINDS;
    unsigned lower = sr_store_rd16(p + 12), upper = sr_store_rd16(p + 14);
    if (sr_store_rd64(p) != n || (kind != PAGES_BRANCH && kind != PAGES_LEAF) || lower < PAGES_HEADER ||
        (lower - PAGES_HEADER) % 2 || lower > upper || upper > w->pg->psize ||
        (kind == PAGES_BRANCH && lower == PAGES_HEADER)) {
        snprintf(w->problem, w->len, "page %" PRIu64 " is not a good tree page", n);
        return -1;
    }
    unsigned keys = (lower - PAGES_HEADER) / 2;
    for (unsigned i = 0; i < keys; i++) {
        size_t off;
        if (pages_node(w, p, n, i, upper, &off) != 0) return -1;
        const unsigned char *node = p + off;
        int rc = kind == PAGES_LEAF ? pages_leaf_node(w, p, n, off, main_db, depth)
                                    : pages_tree(w,
                                                 sr_store_rd16(node) | (uint64_t)sr_store_rd16(node + 2) << 16 |
                                                     (uint64_t)sr_store_rd16(node + 4) << 32,
                                                 main_db, depth + 1);
        if (rc != 0) return -1;
    }
    return 0;
}

int sr_store_pages_check(const sr_store_pages *pg, char *problem, size_t len) {
    pages_walk w = {.pg = pg, .problem = problem, .len = len};
    w.seen = calloc((size_t)(pg->last_pg / 8 + 1), 1);
    if (!w.seen) {
        snprintf(problem, len, "no memory to check its pages");
        return -1;
    }
    w.seen[0] = 3; /* the meta pages */
    int rc = 0;
    if (pg->free_root != UINT64_MAX) rc = pages_tree(&w, pg->free_root, 0, 1);
    if (rc == 0 && pg->main_root != UINT64_MAX) rc = pages_tree(&w, pg->main_root, 1, 1);
    for (size_t i = 0; rc == 0 && i < pg->free_count; i++) {
        uint64_t n = pg->free_pgs[i];
        if (n < 2 || n > pg->last_pg || (w.seen[n >> 3] & (1u << (n & 7)))) {
            snprintf(problem, len, "page %" PRIu64 " is in the free list and in use (or listed twice)", n);
            rc = -1;
        } else {
            w.seen[n >> 3] |= (uint8_t)(1u << (n & 7));
        }
    }
    free(w.seen);
    return rc;
}
