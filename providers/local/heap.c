/*
 * heap.c: room in huge pages for a state about to be replayed.
 *
 * A replay builds the state on the thread that applies the events, in
 * its heap: for a 100,000-event file about 23 MB, grown a page at a time.
 * Each 4 KiB page the heap grows by costs a page fault when it is first
 * written, 1.5 to 2 microseconds on the virtual machines we measure on:
 * some 6,000 faults and 10 ms of the thread everything else waits for.
 * A 2 MiB page costs one fault, and the system gives them to memory that
 * asks (transparent huge pages in "madvise" mode, the usual default).
 *
 * So before a large replay the heap is grown once by what the state may
 * need and the new part is advised to use huge pages: blocks are taken
 * from malloc and given back, which leaves them as free room at the top
 * of the heap for the replay to allocate from. The room is address space
 * only until something is written there. Afterwards malloc's usual
 * settings come back, and with them the trimming of room left unused.
 *
 * This is glibc's malloc, tuned through its documented mallopt settings;
 * elsewhere, or where the system has no huge pages to give, nothing
 * changes but the speed.
 */
#include <limits.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "local.h"

#if defined(__GLIBC__) && defined(M_MMAP_THRESHOLD) && defined(MADV_HUGEPAGE)

#define HUGE_PAGE ((uintptr_t)2 << 20)
/* glibc serves blocks below its mmap threshold from the heap, and takes
 * no threshold above 32 MiB on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX). */
#define THRESHOLD_MAX (32 << 20)
#define BLOCK ((size_t)30 << 20)
#define MAX_BLOCKS 8
/* glibc's defaults for the two settings changed here. */
#define DEFAULT_THRESHOLD (128 * 1024)

void tt_heap_expect(size_t bytes) {
  if (bytes < 2 * HUGE_PAGE)
    return;
  /* Blocks this large must come from the heap, not from mmap, and giving
   * them back must not shrink the heap again. */
  if (!mallopt(M_TRIM_THRESHOLD, INT_MAX) ||
      !mallopt(M_MMAP_THRESHOLD, THRESHOLD_MAX))
    return;
  /* volatile: a block that is freed unused may otherwise never be
   * allocated at all. */
  void *volatile block[MAX_BLOCKS];
  size_t n = 0;
  char *lo = sbrk(0);
  for (size_t left = bytes; left > 0 && n < MAX_BLOCKS; n++) {
    size_t take = left < BLOCK ? left : BLOCK;
    block[n] = malloc(take);
    if (!block[n])
      break;
    left -= take;
  }
  char *hi = sbrk(0);
  /* Whole huge pages only: the advice applies to the pages in the range,
   * and the heap's first, partly used page stays as it is. */
  uintptr_t from = ((uintptr_t)lo + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  uintptr_t to = (uintptr_t)hi & ~(HUGE_PAGE - 1);
  if (lo != (char *)-1 && hi != (char *)-1 && to > from)
    (void)madvise((void *)from, to - from, MADV_HUGEPAGE);
  for (size_t i = 0; i < n; i++)
    free(block[i]);
}

void tt_heap_settle(void) {
  (void)mallopt(M_MMAP_THRESHOLD, DEFAULT_THRESHOLD);
  (void)mallopt(M_TRIM_THRESHOLD, DEFAULT_THRESHOLD);
}

#else

void tt_heap_expect(size_t bytes) { (void)bytes; }
void tt_heap_settle(void) {}

#endif
