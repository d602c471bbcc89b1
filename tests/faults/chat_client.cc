#include "chat_client.h"

#include <cstdio>
#include <thread>

#include "chat_api.h"
#include "checker.h"

namespace stowage::faults {

std::string GuestPlan::Own(int generation, int client, int j) const {
  return tag + "-g" + std::to_string(generation) + "-c" + std::to_string(client) + "-" + std::to_string(j);
}

std::string GuestPlan::Shared(int generation, int j) const {
  return tag + "-g" + std::to_string(generation) + "-shared-" + std::to_string(j);
}

std::vector<std::string> GuestPlan::All(int generations, int clients) const {
  std::vector<std::string> all;
  for (int generation = 0; generation < generations; ++generation) {
    for (int client = 0; client < clients; ++client) {
      for (int j = 0; j < own_per_client; ++j) all.push_back(Own(generation, client, j));
    }
    for (int j = 0; j < shared; ++j) all.push_back(Shared(generation, j));
  }
  return all;
}

ChatClient::ChatClient(ClientSettings settings, Ledger& ledger, const CaseClock& clock)
    : settings_(std::move(settings)),
      ledger_(ledger),
      clock_(clock),
      random_(std::random_device{}()),
      last_instance_(settings_.index % static_cast<int>(settings_.ports.size())) {
  for (auto port : settings_.ports) {
    connections_.push_back(std::make_unique<testing::HttpClient>(port));
    connections_.back()->set_timeout(settings_.request_timeout);
  }
}

void ChatClient::Run(const std::atomic<bool>& stop, const std::atomic<bool>& abort) {
  while (!stop && !abort) {
    Round(abort);
    std::this_thread::sleep_for(settings_.pause);
  }
  ledger_.AddRecords(std::move(records_));
}

int ChatClient::NextInstance() {
  last_instance_ = (last_instance_ + 1) % static_cast<int>(connections_.size());
  return last_instance_;
}

void ChatClient::Round(const std::atomic<bool>& abort) {
  std::uniform_real_distribution<double> unit(0, 1);
  const GuestPlan& plan = settings_.guests;
  const int generation = plan.GenerationAt(clock_.Now());
  const bool shared = plan.shared > 0 && unit(random_) < settings_.shared_share;
  const std::string guest =
      shared ? plan.Shared(generation, std::uniform_int_distribution<int>(0, plan.shared - 1)(random_))
             : plan.Own(generation, settings_.index,
                        std::uniform_int_distribution<int>(0, plan.own_per_client - 1)(random_));

  char nonce[17];
  std::snprintf(nonce, sizeof nonce, "%016llx", static_cast<unsigned long long>(random_()));
  const std::string id =
      plan.tag + "-" + std::to_string(settings_.index) + "-" + std::to_string(records_.size()) + "-" + nonce;
  MessageRecord record;
  record.guest = guest;
  record.key = "k-" + id;
  record.content = "m-" + id;
  if (const Attempt* ack = PostUntilStored(record, record.attempts, abort)) {
    ledger_.Acknowledge(guest, {record.content, ack->sequence});
    if (unit(random_) < settings_.repeat_share) PostUntilStored(record, record.repeat_attempts, abort);
  }
  records_.push_back(std::move(record));
  CheckGet(guest);
}

const Attempt* ChatClient::PostUntilStored(const MessageRecord& record, std::vector<Attempt>& attempts,
                                           const std::atomic<bool>& abort) {
  const std::string body = MessageBody(record.content);
  const Seconds first_sent = clock_.Now();
  auto backoff = std::chrono::milliseconds(50);
  while (true) {
    int instance = NextInstance();
    attempts.push_back(PostOnce(*connections_[instance], instance, clock_, record.guest, record.key, body));
    const Attempt& attempt = attempts.back();
    if (attempt.ok()) return &attempt;
    if (!WorthRetrying(attempt) || abort || clock_.Now() - first_sent > settings_.give_up) return nullptr;
    auto jitter = std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 25)(random_));
    std::this_thread::sleep_for(backoff + jitter);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
}

void ChatClient::CheckGet(const std::string& guest) {
  // Taken before the GET is sent: all of these must be in its answer.
  auto acked_before = ledger_.AcknowledgedFor(guest);
  int instance = NextInstance();
  const std::string name = static_cast<std::size_t>(instance) < settings_.names.size()
                               ? settings_.names[instance]
                               : "stowaged " + std::to_string(instance);
  auto shown = GetHistory(*connections_[instance], name, guest);
  if (!shown.answered) return;  // a GET that fails during a fault is not a violation
  auto problem = CheckOnlineGet(guest, acked_before, shown.contents);
  if (problem) {
    char when[32];
    std::snprintf(when, sizeof when, "+%.2f s", clock_.Now());
    problem->detail += " (GET to " + shown.instance + " answered at " + when + ")";
  }
  ledger_.CountOnlineCheck(problem);
}

}  // namespace stowage::faults
