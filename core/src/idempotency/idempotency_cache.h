// IdempotencyCache: the first answer to a POST carrying an Idempotency-Key,
// kept so that a retry with the same key and body gets the same answer and
// stores nothing twice.
//
// Scope: one server process. Entries live `ttl` (24 h by default) and at most
// `max_entries` are kept (the oldest go first); a restart forgets them.
// Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace stowage::idempotency {

class IdempotencyCache {
 public:
  using Clock = std::chrono::steady_clock;

  IdempotencyCache(std::chrono::seconds ttl = std::chrono::hours(24), std::size_t max_entries = 100000);

  enum class Verdict {
    kNew,       // the caller runs the request, then calls Complete or Abandon
    kReplay,    // the same key and body were answered: `status` and `body` hold that answer
    kConflict,  // the key was used with another body
    kBusy,      // the first request with this key is still running past `wait_until`
  };
  struct Lookup {
    Verdict verdict = Verdict::kNew;
    int status = 0;
    std::string body;
  };

  // `key` is the client's Idempotency-Key scoped by the caller (e.g. with the
  // guest id); `request` is what must match for a replay (e.g. the raw body).
  // While a request with the same key runs, waits for it until `wait_until`.
  Lookup Begin(const std::string& key, std::string_view request, Clock::time_point wait_until);
  // Records the answer of a request that Begin returned kNew for.
  void Complete(const std::string& key, int status, std::string body);
  // Forgets a request that Begin returned kNew for (its answer must not be
  // replayed, e.g. a failure the client should retry).
  void Abandon(const std::string& key);

  std::size_t size() const;

 private:
  struct Entry {
    std::uint64_t request_hash = 0;
    bool done = false;
    int status = 0;
    std::string body;
    Clock::time_point expires;
    std::list<std::string>::iterator order;  // position in order_, oldest first
  };

  void EvictLocked(Clock::time_point now);

  const std::chrono::seconds ttl_;
  const std::size_t max_entries_;
  mutable std::mutex mu_;
  std::condition_variable finished_;
  std::unordered_map<std::string, Entry> entries_;
  std::list<std::string> order_;
};

}  // namespace stowage::idempotency
