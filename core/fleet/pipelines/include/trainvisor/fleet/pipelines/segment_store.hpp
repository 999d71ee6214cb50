// The coordinator's store of pipeline stream data: every accepted batch is sealed as one segment,
// a file holding the batch's canonical encoding (sample_batch.hpp) named by its sha256, and a row
// in the index (table pipeline_segments of the coordinator's SQLite file) that gives it its place
// in the pipeline's stream: seq 0, 1, 2 ..., the stream index of its first row, its time range.
//
// Durability: append() returns only once both the file (written to a temp name, fsynced, renamed
// to its content address, directory fsynced) and the index row (synchronous=FULL) are durable.
// A crash between the two leaves a file that no row names; open() removes it, and any temp file a
// crash left, and says so in recovered(). One process owns a directory: open() would remove the
// temp file of another process's append in progress.
//
// Layout under `dir` (created 0700): <sha256 hex>.batch, 0600, one per distinct content (equal
// batches are stored once, whatever pipeline or seq names them); .tmp-* while being written.
// A segment file is three .npy arrays back to back: np.load(f) three times reads it.
//
// Errors: SegmentError for an append the store refuses (the client's to fix: another sample
// shape, time going back, an idempotency key reused for other data, a bad name) and for a segment
// that cannot be read back (missing, or its bytes no longer hash to its digest); BatchError
// (sample_batch.hpp) for a batch the codec refuses; store::StorageFull when the disk is full,
// for the segment file (ENOSPC, EDQUOT) as for the index; store::StoreError for any other
// database or file system failure. A failed append stores nothing: no index row, and no file
// under a final name that was not there before.
//
// Thread-safety: every method may be called from any thread; one mutex serialises them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "trainvisor/fleet/pipelines/sample_batch.hpp"

namespace tv::fleet::pipelines {

struct SegmentInfo {
  std::string pipeline;
  std::int64_t seq = 0;  // 0, 1, 2 ... per pipeline
  std::string digest;    // sha256 hex of the segment's bytes
  std::int64_t rows = 0;
  std::int64_t first_sample = 0;  // the stream index of row 0
  std::int64_t first_time_ns = 0;
  std::int64_t last_time_ns = 0;
  std::int64_t bytes = 0;
  std::vector<std::int64_t> sample_shape;
  bool operator==(const SegmentInfo&) const = default;
};

// A refused append or an unreadable segment; the message names the pipeline or the file and why.
class SegmentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class SegmentStore {
 public:
  // Opens the index in the SQLite file `db_path` (its own connection, synchronous=FULL; the table
  // is created when missing) and the segment files under `dir`, then recovers (see above).
  // Throws store::StoreError naming the database, or std::runtime_error naming the directory.
  static SegmentStore open(const std::string& db_path, const std::string& dir);
  // Opens an existing store to read it, for a tool beside the coordinator that owns it (a
  // replay): neither the database nor the directory is created, no table is made, nothing is
  // recovered, and append() is a SegmentError. SQLite may still create the database's -wal and
  // -shm side files, which hold no rows, when no coordinator has them open. Throws
  // std::runtime_error naming a missing file or directory or a database with no segment index.
  static SegmentStore open_read_only(const std::string& db_path, const std::string& dir);
  SegmentStore(SegmentStore&&) noexcept;
  SegmentStore& operator=(SegmentStore&&) noexcept;
  ~SegmentStore();

  // Seals `batch` as the pipeline's next segment and returns it once durable. Refuses a
  // sample_shape other than the pipeline's earlier segments' and a first timestamp before the
  // pipeline's last one. `idempotency_key` (optional, chosen by the client, 1..200 printable
  // ASCII characters): an append with a key the pipeline already stored stores nothing and
  // returns the earlier segment, so that a client retrying after a lost acknowledgement does not
  // store its batch twice; the same key with other data is refused. Pipeline names are 1..200
  // printable ASCII characters.
  SegmentInfo append(const std::string& pipeline, const SampleBatchData& batch,
                     const std::string& idempotency_key = "");

  // The pipeline's segments with seq >= from_seq in seq order, at most `limit` (-1: all).
  std::vector<SegmentInfo> segments(const std::string& pipeline, std::int64_t from_seq = 0,
                                    std::int64_t limit = -1) const;
  // The pipelines that have at least one segment, by name.
  std::vector<std::string> pipelines() const;
  std::optional<SegmentInfo> last(const std::string& pipeline) const;
  // The rows of all the pipeline's segments: the stream index its next sample will get.
  std::int64_t total_rows(const std::string& pipeline) const;

  // Reads a segment file, checks its sha256 and decodes it. A malformed digest, a missing file or
  // one whose bytes do not match: SegmentError naming the digest or the path.
  SampleBatchData read(const std::string& digest) const;
  // Where the segment of `digest` lives (whether or not it exists). A malformed digest (not 64
  // lowercase hex characters) is a SegmentError, so that no caller builds a path from one.
  std::string path_of(const std::string& digest) const;

  // The files open() removed: temp files and segment files no index row named.
  std::vector<std::string> recovered() const;

 private:
  struct Impl;
  explicit SegmentStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tv::fleet::pipelines
