/* store/store_pages: the page check of the start-up walk, on small LMDB-shaped maps built here
 * (64-bit layout: 16-byte page header, 2-byte node offsets, 8-byte node headers). Whole stores,
 * healthy and damaged, go through it in test_store's open tests. */
#include <stdlib.h>
#include <string.h>

#include "store/store_pages.h"
#include "unit.h"

#define PS 512
#define PAGES 16
#define NONE UINT64_MAX

static unsigned char map[PS * PAGES];

static void put16(unsigned char *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

/* Page n as an empty page of kind flags (branch 1, leaf 2, overflow 4). */
static unsigned char *page(uint64_t n, uint16_t flags) {
    unsigned char *p = map + n * PS;
    memset(p, 0, PS);
    put64(p, n);
    put16(p + 10, flags);
    put16(p + 12, 16); /* lower: no nodes yet */
    put16(p + 14, PS); /* upper */
    return p;
}

/* Adds a node (key, then data of dlen bytes from data; for a branch, data is unused and dsize_or_pgno
 * the child) at the top of page p's free space. */
static void node(unsigned char *p, uint16_t flags, const char *key, uint64_t dsize_or_pgno, const void *data,
                 size_t dlen) {
    uint16_t lower, upper;
    memcpy(&lower, p + 12, 2);
    memcpy(&upper, p + 14, 2);
    size_t klen = strlen(key), size = 8 + klen + dlen;
    upper = (uint16_t)(upper - size);
    unsigned char *nd = p + upper;
    put16(nd, (uint16_t)(dsize_or_pgno & 0xffff));
    put16(nd + 2, (uint16_t)((dsize_or_pgno >> 16) & 0xffff));
    put16(nd + 4, (p[10] & 1) ? (uint16_t)(dsize_or_pgno >> 32) : flags);
    put16(nd + 6, (uint16_t)klen);
    memcpy(nd + 8, key, klen);
    if (dlen) memcpy(nd + 8 + klen, data, dlen);
    put16(p + lower, upper);
    put16(p + 12, (uint16_t)(lower + 2));
    put16(p + 14, upper);
}

/* A healthy snapshot: free DB root 2 (a leaf); main root 3, a branch over leaves 4 and 5; leaf 4
 * holds named database "a" (root 6, a leaf with a big value on overflow pages 7-8); pages 9-10 are
 * free. */
static sr_store_pages healthy(uint64_t *free_pgs) {
    unsigned char db[48] = {0};
    page(2, 2);
    page(3, 1);
    node(map + 3 * PS, 0, "", 4, NULL, 0);
    node(map + 3 * PS, 0, "m", 5, NULL, 0);
    page(4, 2);
    put64(db + 40, 6);
    node(map + 4 * PS, 2, "a", sizeof db, db, sizeof db);
    page(5, 2);
    node(map + 5 * PS, 0, "z", 3, "abc", 3);
    page(6, 2);
    uint64_t ov = 7;
    node(map + 6 * PS, 1, "big", PS + 100, &ov, 8);
    unsigned char *o = page(7, 4);
    put32(o + 12, 2);
    free_pgs[0] = 9;
    free_pgs[1] = 10;
    return (sr_store_pages){
        .map = map, .psize = PS, .last_pg = 10, .free_root = 2, .main_root = 3, .free_pgs = free_pgs, .free_count = 2};
}

static int check(const sr_store_pages *pg, char *problem) {
    problem[0] = '\0';
    return sr_store_pages_check(pg, problem, 200);
}

TEST(a_healthy_snapshot_passes) {
    uint64_t fr[2];
    sr_store_pages pg = healthy(fr);
    char problem[200];
    CHECK_INT(check(&pg, problem), 0);
    pg.free_root = pg.main_root = NONE; /* an empty store */
    pg.free_count = 0;
    CHECK_INT(check(&pg, problem), 0);
}

TEST(a_page_both_in_use_and_free_is_refused) {
    uint64_t fr[2];
    sr_store_pages pg = healthy(fr);
    char problem[200];
    fr[1] = 5; /* a leaf of the main database */
    CHECK_INT(check(&pg, problem), -1);
    CHECK(strstr(problem, "page 5 is in the free list") != NULL);
    fr[1] = 8; /* the second overflow page of a value */
    CHECK_INT(check(&pg, problem), -1);
    fr[1] = 9; /* listed twice */
    CHECK_INT(check(&pg, problem), -1);
}

TEST(trees_that_share_or_leave_pages_are_refused) {
    uint64_t fr[2];
    sr_store_pages pg = healthy(fr);
    char problem[200];
    pg.free_root = 6; /* the named database's root, reached again from the main tree */
    CHECK_INT(check(&pg, problem), -1);
    CHECK(strstr(problem, "reached twice") != NULL);
    pg = healthy(fr);
    pg.last_pg = 7; /* the value's second overflow page outside the snapshot */
    fr[0] = fr[1] = 2;
    pg.free_count = 0;
    CHECK_INT(check(&pg, problem), -1);
    CHECK(strstr(problem, "outside") != NULL);
}

TEST(pages_of_the_wrong_kind_or_number_are_refused) {
    uint64_t fr[2];
    sr_store_pages pg = healthy(fr);
    char problem[200];
    put16(map + 5 * PS + 10, 4); /* a leaf that says it is an overflow page */
    CHECK_INT(check(&pg, problem), -1);
    CHECK(strstr(problem, "page 5") != NULL);
    pg = healthy(fr);
    put64(map + 6 * PS, 12); /* a page that names another number */
    CHECK_INT(check(&pg, problem), -1);
    pg = healthy(fr);
    put32(map + 7 * PS + 12, 0); /* an overflow run of no pages */
    CHECK_INT(check(&pg, problem), -1);
    CHECK(strstr(problem, "page count") != NULL);
}

TEST(nodes_outside_their_page_are_refused) {
    uint64_t fr[2];
    sr_store_pages pg = healthy(fr);
    char problem[200];
    put16(map + 5 * PS + 16, PS - 4); /* a node pointer past the page's end */
    CHECK_INT(check(&pg, problem), -1);
    CHECK(strstr(problem, "outside") != NULL);
    pg = healthy(fr);
    unsigned char *nd = map + 5 * PS + PS - (8 + 1 + 3);
    put16(nd, 4000); /* a value larger than its page */
    CHECK_INT(check(&pg, problem), -1);
    pg = healthy(fr);
    put16(map + 3 * PS + 12, 16); /* a branch without keys */
    CHECK_INT(check(&pg, problem), -1);
}
