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

struct ClientSettings {
  int index = 0;                         // names the client in keys and contents
  std::string run_tag;                   // unique per case and run, in every key and content
  std::vector<std::string> own_guests;   // written by this client alone
  std::vector<std::string> shared_guests;  // written by several clients at once
  std::vector<std::uint16_t> ports;      // one per stowaged; retries alternate between them
  std::chrono::milliseconds request_timeout{5000};
  Seconds give_up = 30;          // a message not stored after this long is abandoned
  double repeat_share = 0.1;     // the share of acknowledged POSTs sent again on purpose
  double shared_share = 0.25;    // the share of POSTs to a shared guest
  // Between one POST-and-GET round and the next: about 200 POSTs/s from 8
  // clients, enough for every fault to hit requests in flight without
  // taking the machine from whoever shares it.
  std::chrono::milliseconds pause{30};
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
