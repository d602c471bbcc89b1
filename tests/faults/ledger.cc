#include "ledger.h"

namespace stowage::faults {

namespace {

const Attempt* LastIfOk(const std::vector<Attempt>& attempts) {
  return !attempts.empty() && attempts.back().ok() ? &attempts.back() : nullptr;
}

}  // namespace

const Attempt* MessageRecord::Acknowledgement() const {
  return LastIfOk(attempts);
}

const Attempt* MessageRecord::RepeatAnswer() const {
  return LastIfOk(repeat_attempts);
}

void Ledger::Acknowledge(const std::string& guest, AckedMessage message) {
  std::lock_guard lock(mutex_);
  acked_[guest].push_back(std::move(message));
  ++acknowledged_;
}

int Ledger::acknowledged() const {
  std::lock_guard lock(mutex_);
  return acknowledged_;
}

std::vector<AckedMessage> Ledger::AcknowledgedFor(const std::string& guest) const {
  std::lock_guard lock(mutex_);
  auto it = acked_.find(guest);
  return it == acked_.end() ? std::vector<AckedMessage>{} : it->second;
}

void Ledger::CountOnlineCheck(const std::optional<Example>& problem) {
  std::lock_guard lock(mutex_);
  ++online_checks_;
  if (!problem) return;
  ++online_violations_;
  if (online_examples_.size() < kMaxExamples) online_examples_.push_back(*problem);
}

int Ledger::online_checks() const {
  std::lock_guard lock(mutex_);
  return online_checks_;
}

int Ledger::online_violations() const {
  std::lock_guard lock(mutex_);
  return online_violations_;
}

std::vector<Example> Ledger::online_examples() const {
  std::lock_guard lock(mutex_);
  return online_examples_;
}

void Ledger::AddRecords(std::vector<MessageRecord> records) {
  std::lock_guard lock(mutex_);
  for (auto& record : records) records_.push_back(std::move(record));
}

}  // namespace stowage::faults
