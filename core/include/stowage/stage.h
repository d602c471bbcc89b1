// Stage: one storage target in the pipeline. A plugin library defines one
// Stage subclass and exports it with STOWAGE_STAGE (stowage/plugin.h).
//
// Contract for every operation:
// - It may be called from several threads at once; a stage guards its own
//   state.
// - It finishes by the context's deadline (pass what remains to the I/O it
//   does). The host stops waiting at the deadline and counts it failed.
// - It reports failure as a Status; an exception that escapes is caught at
//   the plugin boundary and becomes a kInternal error.
// - It logs what it stored (one info line per message), but not the
//   failures it returns: the host logs each failure once, with the stage's
//   label, its policy and what follows from it. A stage logs only what it
//   does not return (a deferred migration, a background flush that failed).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "stowage/config.h"
#include "stowage/context.h"
#include "stowage/logger.h"
#include "stowage/message.h"
#include "stowage/sql.h"
#include "stowage/status.h"

namespace stowage {

// The answer to a read: `found` is false when the stage holds nothing for
// the guest (for a cache, a miss), in which case the next stage is asked.
struct ReadResult {
  Status status;
  bool found = false;
  std::vector<Message> messages;  // oldest first
};

// The answer to an erase: `held` is true when the stage had data of the
// guest and removed it.
struct EraseResult {
  Status status;
  bool held = false;
};

// What a stage is given at construction. Everything in it outlives the stage.
struct StageEnvironment {
  Logger& log;
  // The [[database]] named by the stage's `database` key; null when none.
  // For schema migrations (Database::apply_migrations) and work outside
  // requests.
  Database* database = nullptr;
};

// One message found by a search, with its similarity to the query (cosine,
// 1 is identical).
struct SearchHit {
  Message message;
  double score = 0;
};

// The answer to a search: `supported` is false when the stage does not
// search (the host asks the next one).
struct SearchResult {
  Status status;
  bool supported = false;
  std::vector<SearchHit> hits;  // best first
};

enum class RequestKind { kWrite, kRead, kErase, kSearch };

// What became of a COMMIT that did not succeed (SDK 1.2, see
// Stage::abandon): the databases rolled the change back, or the answer to
// the COMMIT never came (the connection was lost while it was in flight), so
// the change may have landed, or may still land.
enum class Uncommitted { kRolledBack, kOutcomeUnknown };

// What the host tells every stage after each request, for accounting.
struct RequestReport {
  RequestKind kind;
  const std::string& guest_id;
  bool ok = false;
  // A read served by the first stage that serves reads (the cache). Writes
  // and reads served further down, or by no stage, are misses.
  bool cache_hit = false;
  std::chrono::microseconds elapsed{0};  // the pipeline's time for the request
  // SDK 1.4: a write's attributes once every stage ran (message_id,
  // conversation_id, sequence, ...): with `ok`, what was committed. Null for
  // other requests. Valid during observe() only.
  const Attributes* attributes = nullptr;
};

class Stage {
 public:
  virtual ~Stage() = default;

  // The storage target this stage writes to, as the API names it in
  // `stored_in` and `deleted_from` (e.g. "redis", "postgresql"). Empty when
  // the stage keeps no message content (e.g. a metrics stage).
  virtual std::string target() const = 0;

  // Called on every enabled stage, in order, before any stage writes. A
  // non-ok Status refuses the message (e.g. kRejected for a quota) and
  // nothing is written anywhere.
  virtual Status admit(WriteContext& ctx) { (void)ctx; return Status::Ok(); }

  // Stores the message.
  virtual Status write(WriteContext& ctx) = 0;

  // Undoes exactly the write() made with this context (a later required
  // stage failed), leaving writes of other requests alone. Must tolerate
  // being called after a write() that partly failed.
  virtual Status compensate(WriteContext& ctx) = 0;

  // Serves the guest's messages, oldest first, or says it has none. With
  // ctx.range (SDK 1.5) it may serve just the page asked for and set
  // ctx.range->total; else it serves the whole history (stowage::ReadRange).
  virtual ReadResult read(GuestContext& ctx) { (void)ctx; return {}; }

  // Called after a later stage served a read this stage missed, when what
  // it served is the guest's whole history (never after a mere page): store
  // `messages` so the next read is served here. Optional.
  virtual Status refill(GuestContext& ctx, const std::vector<Message>& messages) {
    (void)ctx;
    (void)messages;
    return Status::Ok();
  }

  // Removes everything the stage holds of the guest.
  virtual EraseResult erase(GuestContext& ctx) = 0;

  // The guest's `k` messages most similar to `query`, best first. Only
  // that guest's messages may be searched. Optional.
  virtual SearchResult search(GuestContext& ctx, const std::string& query, std::size_t k) {
    (void)ctx;
    (void)query;
    (void)k;
    return {};
  }

  // Called after every request, on the request's thread: must be quick and
  // must not block on I/O (aggregate in memory, write later).
  virtual void observe(const RequestReport& report) noexcept { (void)report; }

  // Whether the target is reachable and usable now.
  virtual Status health(Deadline deadline) { (void)deadline; return Status::Ok(); }

  // ---- SDK 1.2: stages that run after the commit ----
  //
  // A stage class that declares `static constexpr bool kAfterCommit = true`
  // keeps a copy of what the pipeline's databases hold (a cache, an index, a
  // notifier) and must never show what they did not commit. When some
  // enabled stage of the pipeline has a [[database]], the host writes such a
  // stage in three steps around the COMMIT, whatever its place in the file:
  //   1. prepare(ctx): after every other stage wrote and before the COMMIT,
  //      with their attributes (message_id, sequence). The stage records that
  //      a change of the guest is coming, so that its copy is not trusted
  //      until the change is settled, whatever happens next (the process
  //      killed, the COMMIT lost). A failure is the stage's write failure: a
  //      required stage fails the request and nothing commits.
  //   2. write(ctx): after the COMMIT succeeded. The message is stored
  //      whatever write() answers: a failure is logged, counted and listed in
  //      `degraded`, and the copy stays untrusted (prepare() saw to that).
  //   3. abandon(ctx, why) instead of write() when the COMMIT did not
  //      happen or its outcome is unknown (the change may still land).
  // An erase likewise: prepare_erase(ctx) first (a required stage's failure
  // stops the request before any stage erases anything), then erase(ctx)
  // once the databases' erase committed or rolled back; nothing when its
  // outcome is unknown. The host passes the same ctx.attributes to
  // prepare_erase() and erase() of one request.
  // In a pipeline without a database the stage is called like any other:
  // write() in file order, compensate() when a later required stage fails,
  // erase() alone.
  virtual Status prepare(WriteContext& ctx) {
    (void)ctx;
    return Status::Ok();
  }
  virtual Status abandon(WriteContext& ctx, Uncommitted why) {
    (void)ctx;
    (void)why;
    return Status::Ok();
  }
  virtual Status prepare_erase(GuestContext& ctx) {
    (void)ctx;
    return Status::Ok();
  }
};

}  // namespace stowage
