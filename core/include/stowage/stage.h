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
#pragma once

#include <string>
#include <vector>

#include "stowage/config.h"
#include "stowage/context.h"
#include "stowage/message.h"
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

  // Serves the guest's messages, oldest first, or says it has none.
  virtual ReadResult read(GuestContext& ctx) { (void)ctx; return {}; }

  // Called after a later stage served a read this stage missed: store
  // `messages` so the next read is served here. Optional.
  virtual Status refill(GuestContext& ctx, const std::vector<Message>& messages) {
    (void)ctx;
    (void)messages;
    return Status::Ok();
  }

  // Removes everything the stage holds of the guest.
  virtual EraseResult erase(GuestContext& ctx) = 0;

  // Whether the target is reachable and usable now.
  virtual Status health(Deadline deadline) { (void)deadline; return Status::Ok(); }
};

}  // namespace stowage
