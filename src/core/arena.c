#include "core/arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_DEFAULT_BLOCK ((size_t)32 << 10)
#define ARENA_ALIGN (alignof(max_align_t))

struct sr_arena_block {
    sr_arena_block *next;
    size_t used;
    size_t size;
    alignas(max_align_t) unsigned char data[];
};

void sr_arena_init(sr_arena *a, size_t block_size) {
    a->blocks = NULL;
    a->block_size = block_size ? block_size : ARENA_DEFAULT_BLOCK;
}

static sr_arena_block *arena_block_new(size_t size) {
    sr_arena_block *b = malloc(sizeof *b + size);
    if (!b) {
        fputs("smsrules: out of memory\n", stderr);
        abort();
    }
    b->next = NULL;
    b->used = 0;
    b->size = size;
    return b;
}

void *sr_arena_alloc(sr_arena *a, size_t n) {
    if (n == 0) n = 1;
    if (n > SIZE_MAX - ARENA_ALIGN) {
        fputs("smsrules: out of memory\n", stderr);
        abort();
    }
    size_t need = (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    sr_arena_block *b = a->blocks;
    if (b && b->size - b->used >= need) {
        void *p = b->data + b->used;
        b->used += need;
        return p;
    }
    if (need > a->block_size / 4) {
        /* A big object gets a block of its own, behind the current one, which keeps its room. */
        sr_arena_block *own = arena_block_new(need);
        own->used = need;
        if (b) {
            own->next = b->next;
            b->next = own;
        } else {
            a->blocks = own;
        }
        return own->data;
    }
    b = arena_block_new(a->block_size);
    b->next = a->blocks;
    a->blocks = b;
    b->used = need;
    return b->data;
}

char *sr_arena_strndup(sr_arena *a, const char *s, size_t len) {
    if (!s) return NULL;
    char *p = sr_arena_alloc(a, len + 1);
    if (len) memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *sr_arena_strdup(sr_arena *a, const char *s) { return s ? sr_arena_strndup(a, s, strlen(s)) : NULL; }

void sr_arena_reset(sr_arena *a) {
    sr_arena_block *keep = a->blocks;
    if (!keep) return;
    sr_arena_block *b = keep->next;
    while (b) {
        sr_arena_block *next = b->next;
        free(b);
        b = next;
    }
    if (keep->size != a->block_size) { /* a big object's own block: not worth keeping */
        free(keep);
        a->blocks = NULL;
        return;
    }
    keep->next = NULL;
    keep->used = 0;
}

void sr_arena_free(sr_arena *a) {
    sr_arena_block *b = a->blocks;
    while (b) {
        sr_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->blocks = NULL;
}
