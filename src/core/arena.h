/* arena: a bump allocator for objects that die together.
 *
 * Many small objects with one lifetime (the messages a store batch hands to
 * its callbacks, the scratch of one loop pass) cost one malloc per block of
 * them instead of one per object, and one free for all. Memory from an arena
 * is never freed one object at a time: sr_arena_reset drops everything (the
 * first block is kept for the next round), sr_arena_free releases it all.
 * Like sr_buf, running out of memory aborts. Not thread safe: one owner at a
 * time (it may move between threads with the objects it holds). */
#ifndef SR_ARENA_H
#define SR_ARENA_H

#include <stddef.h>

typedef struct sr_arena_block sr_arena_block;

typedef struct sr_arena {
    sr_arena_block *blocks; /* newest first */
    size_t block_size;      /* the size of a new block (a bigger object gets a block of its own) */
} sr_arena;

/* block_size 0: 32 KiB (below malloc's mmap threshold, so blocks come from the heap). */
void sr_arena_init(sr_arena *a, size_t block_size);
/* n bytes aligned for any object, valid until the arena is reset or freed. */
void *sr_arena_alloc(sr_arena *a, size_t n);
/* A NUL-terminated copy of s[0..len) (s may hold no NUL); NULL when s is NULL. */
char *sr_arena_strndup(sr_arena *a, const char *s, size_t len);
char *sr_arena_strdup(sr_arena *a, const char *s);
/* Forgets every object; keeps the newest block for reuse, frees the others. */
void sr_arena_reset(sr_arena *a);
void sr_arena_free(sr_arena *a);

#endif
