/* tv_shm.h: the C ABI of a Trainvisor shared-memory block, for trainers written in any language
 * (Python uses it through ctypes: python/trainvisor/shm.py).
 *
 * Same semantics as the C++ API (trainvisor/shm/config_block.hpp): attach by block name,
 * resolve a key once, then read it every step with tv_shm_get_* (bounded seqlock read; a key
 * that does not exist yet returns the caller's default). A snapshot reads several keys from one
 * tree generation. The trainer pushes telemetry; the agent polls it.
 *
 * Errors: functions returning a pointer return NULL, functions returning int return -1; the
 * reason is in tv_shm_last_error() (per thread, kept until the next failing call on that
 * thread; successful calls leave it alone so that reads stay free of bookkeeping).
 * Thread-safety: a block may be shared by threads; a handle or snapshot belongs to one thread at
 * a time. Telemetry push and poll each need a single caller per block.
 */
#ifndef TV_SHM_H
#define TV_SHM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library builds with hidden visibility; exactly these declarations are its exports. */
#pragma GCC visibility push(default)

/* 2: tv_shm_block_lease_version and tv_shm_block_heartbeat. */
#define TV_SHM_ABI_VERSION 2
#define TV_SHM_MAX_STRING 48

enum tv_shm_type {
  TV_SHM_NONE = 0,
  TV_SHM_FLOAT64 = 1,
  TV_SHM_INT64 = 2,
  TV_SHM_BOOL = 3,
  TV_SHM_STRING = 4
};

enum tv_shm_access { TV_SHM_READ_ONLY = 0, TV_SHM_READ_WRITE = 1 };

typedef struct tv_shm_block tv_shm_block;
typedef struct tv_shm_handle tv_shm_handle;
typedef struct tv_shm_snapshot tv_shm_snapshot;

typedef struct tv_shm_value {
  int32_t type; /* enum tv_shm_type */
  int32_t b;
  double f64;
  int64_t i64;
  uint32_t str_len;
  char str[TV_SHM_MAX_STRING + 1]; /* NUL-terminated */
} tv_shm_value;

/* Field meanings: trainvisor/shm/telemetry_ring.hpp (TelemetryRecord). */
typedef struct tv_shm_telemetry {
  uint64_t step;
  uint32_t epoch;
  uint32_t flags;
  int64_t wall_time_ns;
  double loss;
  double grad_norm;
  double learning_rate;
  uint64_t config_revision;
  double val_loss;
  double val_accuracy;
  double samples_per_sec;
} tv_shm_telemetry;

int tv_shm_abi_version(void);
const char* tv_shm_last_error(void);

/* Writes "trainvisor.<job_id>" into buf; returns its length, or -1 (invalid id, small buf). */
int tv_shm_block_name_for_job(const char* job_id, char* buf, size_t cap);

tv_shm_block* tv_shm_attach(const char* block_name, int access);
void tv_shm_detach(tv_shm_block* block); /* handles and snapshots stay valid */

tv_shm_handle* tv_shm_resolve(tv_shm_block* block, const char* path, int type);
void tv_shm_handle_free(tv_shm_handle* handle);
double tv_shm_get_f64(tv_shm_handle* handle, double fallback);
int64_t tv_shm_get_i64(tv_shm_handle* handle, int64_t fallback);
int tv_shm_get_bool(tv_shm_handle* handle, int fallback);
/* Copies the value (or fallback) NUL-terminated into buf; returns its length, -1 on a type
 * mismatch of the handle. */
int tv_shm_get_string(tv_shm_handle* handle, const char* fallback, char* buf, size_t cap);
int tv_shm_handle_bound(tv_shm_handle* handle);
uint64_t tv_shm_handle_fallbacks(const tv_shm_handle* handle);

/* `fallbacks[i].type` is key i's type. */
tv_shm_snapshot* tv_shm_snapshot_new(tv_shm_block* block, const char* const* paths,
                                     const tv_shm_value* fallbacks, size_t count);
void tv_shm_snapshot_free(tv_shm_snapshot* snapshot);
/* Fills out[0..count). Returns 1 for a fresh consistent read, 0 when the last good values were
 * served (writes kept overlapping), -1 on error. *generation gets the tree generation. */
int tv_shm_snapshot_read(tv_shm_snapshot* snapshot, tv_shm_value* out, size_t count,
                         uint64_t* generation);

/* The lease the block belongs to: its attempt in *attempt and its lease token's digest as 64
 * lowercase hex digits, NUL-terminated, in digest_hex (cap >= 65). Returns 1; 0 while another
 * holder is stamping its lease into the block (the block is being taken over: it belongs to no
 * one who asks); -1 on error. A trainer started for a lease stops once the block's is not it. */
int tv_shm_block_lease(tv_shm_block* block, uint64_t* attempt, char* digest_hex, size_t cap);
/* Moves whenever the block's lease is stamped: a trainer that found its own lease while this was
 * v needs no other read while it stays v. One load; 0 for a NULL block. */
uint64_t tv_shm_block_lease_version(tv_shm_block* block);
/* The wall time (Unix ns) of the config writer's last heartbeat in *unix_ns, 0 when it never
 * beat (a writer that never beats cannot be watched). Returns 0, or -1 on error. A trainer
 * compares it with its clock to stop once its agent has been silent too long. */
int tv_shm_block_heartbeat(tv_shm_block* block, uint64_t* unix_ns);
/* 0 while the block is intact; -1 once it was truncated or an access to it faulted (the reason,
 * naming the block and its sizes, in tv_shm_last_error()): stop using it. An access to a
 * truncated block never raises SIGBUS: it reads zeros. One fstat. */
int tv_shm_block_check(tv_shm_block* block);

/* Needs TV_SHM_READ_WRITE. Push never blocks. Poll returns records copied (or -1) and adds the
 * records missed since the last poll to *missed. */
int tv_shm_telemetry_push(tv_shm_block* block, const tv_shm_telemetry* record);
long tv_shm_telemetry_poll(tv_shm_block* block, tv_shm_telemetry* out, size_t max,
                           uint64_t* missed);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* TV_SHM_H */
