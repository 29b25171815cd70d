/* The page check of the store's start-up walk (store.c), and the readers of LMDB's on-disk integers
 * that it and store.c's meta-page check share: LMDB's B-trees of one snapshot, read
 * from the mapped file in LMDB 0.9's 64-bit page layout, against the snapshot's free-page list.
 * Internal to src/store/. */
#ifndef SR_STORE_PAGES_H
#define SR_STORE_PAGES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* LMDB's on-disk integers (little-endian, as this machine), read from bytes of any alignment. */
static inline uint64_t sr_store_rd64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t sr_store_rd32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint16_t sr_store_rd16(const unsigned char *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

typedef struct sr_store_pages {
    const unsigned char *map; /* the file's first byte, as mapped */
    uint64_t psize;           /* page size */
    uint64_t last_pg;         /* the snapshot's last page: pages 0..last_pg are mapped */
    uint64_t free_root;       /* the snapshot's free DB root, UINT64_MAX when empty */
    uint64_t main_root;       /* its main DB root, UINT64_MAX when empty */
    const uint64_t *free_pgs; /* the page numbers its free list holds */
    size_t free_count;
} sr_store_pages;

/* Walks every page reachable from the two roots (branch and leaf pages, overflow pages, and the
 * roots of the named databases in the main one's leaves): each must be inside the snapshot, say
 * its own number, have the kind its parent expects and well-formed nodes, and be reached once; no
 * page of the free list may be among them (LMDB would hand it out to a write while it is in use,
 * and assert or overwrite live data). 0, or -1 with what is wrong in problem. */
int sr_store_pages_check(const sr_store_pages *pg, char *problem, size_t len);

#endif
