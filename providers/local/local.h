/*
 * local.h: the pieces of tether-local, the provider of local resources
 * (file, exec, memo) and of the local state file (state_file).
 *
 *   main.c        the type table and main()
 *   pool.c        the threads that write files and run programs at once
 *   fail.c        failures carried to the reply with their code and data,
 *                 and error messages any thread may ask for
 *   inputs.c      input checks beyond what the library does
 *   file.c        the file type
 *   exec.c        the exec type
 *   memo.c        the memo type
 *   state_file.c  the state_file type: its operations on a held store
 *   state_store.c holding a store: lock, replay, durable appends
 *   state_log.c   the event log format: reading and writing events
 *   heap.c        room in huge pages for a state about to be replayed
 *   lock.c        who holds a store, and since when
 *   durable.c     writing files so that a crash never leaves half of one
 */
#ifndef TETHER_LOCAL_H
#define TETHER_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tether/provider.h"

/* A failure with everything the reply needs: the protocol error code, a
 * message naming what and where, and optional data (owned; NULL when
 * none). (fail.c) */
typedef struct tt_fail {
  int code;
  char message[768];
  tether_json *data;
} tt_fail;

void tt_fail_set(tt_fail *f, int code, tether_json *data, const char *fmt, ...)
    TETHER_PRINTF(4, 5);
/* Answers req with the failure and releases its data. */
tether_done *tt_fail_reply(tether_request *req, tt_fail *f) TETHER_MUST_USE;

/* strerror(err) for any thread: the message is in buf (or in the C
 * library's constant table), never in a buffer another thread may be
 * writing, as strerror's own may be. */
const char *tt_strerror_r(int err, char *buf, size_t len);
/* The same with a buffer of the calling block (a compound literal), for
 * use right in an argument list: valid until the end of that block. */
#define tt_strerror(err) tt_strerror_r((err), (char[128]){0}, 128)

/* ---- Threads (pool.c) ---- */

/* Requests the host may have in flight at once (initialize's
 * concurrency), and so the most pool threads there are: one each. */
#define TT_LOCAL_CONCURRENCY 64

/* Work done on a pool thread for req. It answers req exactly once, with
 * tether_resolve or tether_reject (never a tether_reply_*: the handler
 * has already returned), and may read req's params, which stay valid
 * until then; no other thread touches them meanwhile. */
typedef void tt_work_fn(tether_request *req, void *arg);
/* Hands fn(req, arg) to a pool thread and returns the pending reply; call
 * it last in a handler. arg is malloc'd (or NULL) and freed by the pool
 * after fn. A request cancelled before a thread gets to it is not worked
 * on. */
tether_done *tt_pool_submit(tether_request *req, tt_work_fn *fn,
                            void *arg) TETHER_MUST_USE;
/* Waits for the pool threads to finish the work they were given (a
 * cancelled program is stopped) and ends them; for the end of the
 * process, after tether_provider_main. */
void tt_pool_stop(void);
/* tether_resolve(req, {"outputProperties": outputs}); outputs is
 * consumed. */
void tt_resolve_outputs(tether_request *req, tether_json *outputs);

/* ---- Input checks (inputs.c) ---- */

/* Where the inputs that matter for req are in its params:
 * "/inputProperties" for create and update, else
 * "/resource/inputProperties". */
const char *tt_inputs_where(const tether_request *req);
/* -32602 for input property key of req: data.path is its JSON Pointer and
 * the message says why. */
tether_done *tt_reply_bad_input(tether_request *req, const char *key,
                                const char *why) TETHER_MUST_USE;
/* Checks the existing resource's inputProperties of a delete, read,
 * state_read or state_event against inputs, as the library does for
 * create's and update's; NULL when fine, else a reply already made. */
tether_done *
tt_check_resource_inputs(tether_request *req,
                         const tether_input *inputs) TETHER_MUST_USE;
/* A string input usable as a path or an argument: no NUL byte and, when
 * nonempty is set, not empty. Returns NULL when fine, else what is wrong. */
const char *tt_check_c_string(const tether_json *s, bool nonempty);

/* ---- Durable files (durable.c) ---- */

/* Makes the directory entry of path durable (fsync of its directory). */
bool tt_fsync_parent_dir(const char *path, char *err, size_t errlen);
/* Replaces path with data atomically: a temporary file in the same
 * directory is written, given mode and renamed over path, so a reader
 * sees the old file or the new one. With durable, the file and then the
 * directory are fsynced, so a crash leaves one of the two as well. */
bool tt_write_file_atomic(const char *path, const void *data, size_t len,
                          mode_t mode, bool durable, char *err, size_t errlen);
/* Creates path with data only when it does not exist yet, atomically in
 * the same sense: either there is no file at path, or there is one with
 * all of data, durably. *existed is set when path was already there (then
 * nothing was written). */
bool tt_create_file_exclusive(const char *path, const void *data, size_t len,
                              mode_t mode, bool *existed, char *err,
                              size_t errlen);
/* The current time as RFC 3339 UTC with milliseconds:
 * "2026-11-21T04:00:00.123Z". out must hold 32 bytes. */
void tt_utc_now(char *out, size_t outlen);

/* ---- Who holds a store (lock.c) ---- */

/* Takes the store lock on fd (the open state file at path) without
 * waiting, and records this process as the holder in "PATH.lock". When
 * another process holds it, fills fail with -32020 naming the holder. The
 * kernel drops the lock when the process ends, however it ends. */
bool tt_lock_take(int fd, const char *path, tt_fail *fail);
/* Removes the holder record. Call it before closing the locked fd, so a
 * record never names a process that no longer holds the lock. */
void tt_lock_forget(const char *path);

/* ---- Room for a large state (heap.c) ---- */

/* Makes room for about bytes more of the main heap, in huge pages where
 * the system has them, for a replay about to build a state that large
 * on the main thread (where tether-local handles state requests; on
 * another thread it only costs the address space). tt_heap_settle
 * restores malloc's usual settings afterwards. */
void tt_heap_expect(size_t bytes);
void tt_heap_settle(void);

/* ---- The event log (state_log.c) ---- */

/* What replaying a state file found. */
typedef struct tt_log_replay {
  tether_json *state; /* the resolved state (owned) */
  uint64_t index;     /* the index of the last event */
  uint64_t events;    /* how many events were applied */
  off_t append_at;    /* where the next event goes: the end of the file
                         with a torn tail cut off */
  bool need_newline;  /* the byte before append_at is not '\n' */
  off_t file_size;    /* the size found; > append_at when torn */
} tt_log_replay;

/* Reads the event log in fd from the start, streaming, and resolves it.
 * With max_events > 0 it stops after that many events (1 validates the
 * first event only). A torn last event is skipped with a warning on
 * stderr. Damage fills fail with -32022 naming the line, byte offset and
 * file; a file without a complete first event is damage too. */
bool tt_log_replay_fd(int fd, const char *path, uint64_t max_events,
                      tt_log_replay *out, tt_fail *fail);
/* Appends one event as a compact line (with a leading '\n' when
 * newline_first) to out. event and host_version are strings, or NULL to
 * leave them out. */
void tt_log_format_event(tether_buf *out, bool newline_first, uint64_t index,
                         const char *time, const tether_json *event,
                         const tether_json *host_version,
                         const tether_json *patch);
/* The first event of a new state file: index 0 adding the empty state. */
void tt_log_format_initial(tether_buf *out);
/* Checks that state is a NixOps4 state: an object with "_type":
 * "nixopsState" and objects at "resources" and "deployments". */
const char *tt_log_check_state(const tether_json *state);

/* ---- Held stores (state_store.c) ---- */

typedef struct tt_store tt_store;

/* The store in the state file `name`, held by this process from now until
 * it ends: opened, locked and replayed on first use, and kept in memory. */
tt_store *tt_store_hold(const char *name, tt_fail *fail);
/* The store for name when this process already holds it, else NULL. */
tt_store *tt_store_find(const char *name);
/* The resolved state and last index, including events written but not
 * yet acknowledged. Borrowed. */
const tether_json *tt_store_state(const tt_store *s);
uint64_t tt_store_index(const tt_store *s);
/* Waits until every event written so far is on stable storage. */
bool tt_store_sync(tt_store *s, tt_fail *fail);
/* Applies patch to the state and appends it as the next event; the
 * request is answered {"index"} once the event is durable (see
 * state_store.c). Checks expectIndex (negative: none) first. */
tether_done *tt_store_append(tt_store *s, tether_request *req,
                             const tether_json *event,
                             const tether_json *host_version,
                             const tether_json *patch,
                             int64_t expect_index) TETHER_MUST_USE;
/* Deletes the state file of a store this process holds (its events
 * made durable first, then the file unlinked durably) and stops holding
 * it; s is freed. */
bool tt_store_remove(tt_store *s, tt_fail *fail);
/* Stops holding every store, their pending events made durable; for the
 * end of the process (the memory is left to the exit). */
void tt_store_drop_all(void);

/* ---- Resource types ---- */

/* Reads the umask, which file uses for files created without a mode.
 * Call it before any thread starts: the umask is only read by setting
 * it, and a file or program created meanwhile would get the wrong one. */
void tt_file_init(void);
extern const tether_input tt_file_inputs[];
tether_done *tt_file_create(tether_request *req);
tether_done *tt_file_update(tether_request *req);
tether_done *tt_file_delete(tether_request *req);
tether_done *tt_file_read(tether_request *req);

extern const tether_input tt_exec_inputs[];
tether_done *tt_exec_create(tether_request *req);
tether_done *tt_exec_update(tether_request *req);
tether_done *tt_exec_delete(tether_request *req);

extern const tether_input tt_memo_inputs[];
tether_done *tt_memo_create(tether_request *req);
tether_done *tt_memo_update(tether_request *req);
tether_done *tt_memo_delete(tether_request *req);

extern const tether_input tt_state_file_inputs[];
tether_done *tt_state_file_create(tether_request *req);
tether_done *tt_state_file_update(tether_request *req);
tether_done *tt_state_file_delete(tether_request *req);
tether_done *tt_state_file_read(tether_request *req);
tether_done *tt_state_file_state_read(tether_request *req);
tether_done *tt_state_file_state_event(tether_request *req);

#endif /* TETHER_LOCAL_H */
