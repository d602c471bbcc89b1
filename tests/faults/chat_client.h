// One of the fault suite's client threads: it posts unique messages to its
// guests, retries each with the same Idempotency-Key until it is stored,
// now and then repeats an acknowledged POST on purpose, and GETs the guest
// after each POST, checking the answer online against the ledger.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "http_client.h"
#include "ledger.h"

namespace stowage::faults {

// The guests of a case. Each minute of the run (a generation) has guests of
// its own: `own_per_client` for each client alone, and `shared` ones every
// client writes to, concurrently. Fresh guests each minute keep histories,
// and so GETs, from growing without bound in long runs.
struct GuestPlan {
  std::string tag;  // unique per case and run
  int own_per_client = 4;
  int shared = 8;
  Seconds generation_length = 60;

  int GenerationAt(Seconds t) const { return static_cast<int>(t / generation_length); }
  std::string Own(int generation, int client, int j) const;
  std::string Shared(int generation, int j) const;
  // Every guest of generations 0 to `generations` - 1, for `clients` clients.
  std::vector<std::string> All(int generations, int clients) const;
};

struct ClientSettings {
  int index = 0;                     // names the client in keys and contents
  GuestPlan guests;                  // its tag is in every key and content too
  std::vector<std::uint16_t> ports;  // one per stowaged; retries alternate between them
  // What each port is, in the examples of online violations; "stowaged <i>"
  // when empty (the scale case sends everything to one port, HAProxy's).
  std::vector<std::string> names;
  std::chrono::milliseconds request_timeout{5000};
  Seconds give_up = 30;        // a message not stored after this long is abandoned
  double repeat_share = 0.1;   // the share of acknowledged POSTs sent again on purpose
  double shared_share = 0.25;  // the share of POSTs to a shared guest
  // Between one POST-and-GET round and the next: a few hundred POSTs/s from
  // 8 clients, so that each fault hits requests in flight, without taking
  // the whole machine from whoever shares it.
  std::chrono::milliseconds pause{10};
};

class ChatClient {
 public:
  ChatClient(ClientSettings settings, Ledger& ledger, const CaseClock& clock);

  // Runs rounds (POST a new message, maybe repeat it, GET the guest) until
  // `stop` is set; the message in progress is finished first, unless
  // `abort` is set too. Then hands the records to the ledger.
  void Run(const std::atomic<bool>& stop, const std::atomic<bool>& abort);

 private:
  void Round(const std::atomic<bool>& abort);
  // Posts until a 200, giving up after settings_.give_up; each attempt goes
  // to the other stowaged than the one before it. Returns the 200 or nullptr.
  const Attempt* PostUntilStored(const MessageRecord& record, std::vector<Attempt>& attempts,
                                 const std::atomic<bool>& abort);
  void CheckGet(const std::string& guest);
  int NextInstance();

  ClientSettings settings_;
  Ledger& ledger_;
  const CaseClock& clock_;
  std::vector<std::unique_ptr<testing::HttpClient>> connections_;  // one per stowaged
  std::mt19937_64 random_;
  int last_instance_;
  std::vector<MessageRecord> records_;
};

}  // namespace stowage::faults
