#include "checker.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <set>
#include <sstream>
#include <unordered_map>

namespace stowage::faults {

namespace {

constexpr std::size_t kMaxExamples = 5;

std::string Quote(const std::string& content) {
  return "'" + content + "'";
}

std::string Time(Seconds t) {
  char text[32];
  std::snprintf(text, sizeof text, "+%.2f s", t);
  return text;
}

std::string Duration(Seconds t) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f s", t);
  return text;
}

void AddExample(CaseReport& report, const std::string& count, Example example) {
  auto& list = report.examples[count];
  if (list.size() < kMaxExamples) list.push_back(std::move(example));
}

// The length of the longest strictly increasing subsequence of `values`:
// the messages shown in a consistent order; the rest are out of place.
std::size_t LongestIncreasing(const std::vector<std::size_t>& values) {
  std::vector<std::size_t> tails;
  for (auto value : values) {
    auto it = std::lower_bound(tails.begin(), tails.end(), value);
    if (it == tails.end()) {
      tails.push_back(value);
    } else {
      *it = value;
    }
  }
  return tails.size();
}

// Sequences of one conversation must be exactly 0..n-1.
void CheckSequences(const std::string& guest, const std::vector<StoredMessage>& rows, CaseReport& report) {
  std::map<std::int64_t, std::vector<std::int64_t>> by_conversation;
  for (const auto& row : rows) by_conversation[row.conversation_id].push_back(row.sequence);
  for (auto& [conversation, sequences] : by_conversation) {
    std::sort(sequences.begin(), sequences.end());
    std::optional<std::size_t> first_wrong;
    for (std::size_t i = 0; i < sequences.size(); ++i) {
      if (sequences[i] != static_cast<std::int64_t>(i)) {
        first_wrong = i;
        break;
      }
    }
    if (!first_wrong) continue;
    ++report.counts.sequence_gaps;
    std::ostringstream detail;
    detail << "conversation " << conversation << " has " << sequences.size()
           << " messages; expected sequences 0.." << sequences.size() - 1 << ", but sequence #"
           << *first_wrong << " is " << sequences[*first_wrong];
    AddExample(report, "sequence gaps", {guest, "", detail.str()});
  }
}

// Compares one final GET of `guest` with the rows PostgreSQL holds.
void CheckShown(const std::string& guest, const std::vector<StoredMessage>& rows, const ShownHistory& shown,
                CaseReport& report) {
  if (!shown.answered) {
    report.counts.hidden += static_cast<int>(rows.size());
    if (!rows.empty()) {
      AddExample(report, "hidden",
                 {guest, "",
                  "the final GET on " + shown.instance + " failed (" + shown.failure +
                      "); PostgreSQL holds " + std::to_string(rows.size()) + " messages"});
    }
    return;
  }
  // Where each stored copy of a content sits in sequence order.
  std::unordered_map<std::string, std::vector<std::size_t>> positions;
  for (std::size_t i = 0; i < rows.size(); ++i) positions[rows[i].content].push_back(i);

  std::unordered_map<std::string, std::size_t> times_shown;
  std::vector<std::size_t> shown_positions;  // of the entries matched to a stored copy
  std::vector<std::size_t> shown_index;      // the entry's index in `shown.contents`
  for (std::size_t i = 0; i < shown.contents.size(); ++i) {
    const auto& content = shown.contents[i];
    std::size_t occurrence = times_shown[content]++;
    auto stored = positions.find(content);
    if (stored == positions.end()) {
      ++report.counts.orphaned;
      AddExample(report, "orphaned",
                 {guest, content,
                  "the final GET on " + shown.instance + " shows it at position " + std::to_string(i) +
                      "; PostgreSQL holds no such message for the guest"});
    } else if (occurrence >= stored->second.size()) {
      ++report.counts.out_of_order;
      AddExample(report, "out of order",
                 {guest, content,
                  "the final GET on " + shown.instance + " shows it again at position " + std::to_string(i) +
                      " (" + std::to_string(occurrence + 1) + " times so far); PostgreSQL holds it " +
                      std::to_string(stored->second.size()) + " time(s)"});
    } else {
      shown_positions.push_back(stored->second[occurrence]);
      shown_index.push_back(i);
    }
  }
  for (const auto& [content, stored_at] : positions) {
    auto it = times_shown.find(content);
    std::size_t count = it == times_shown.end() ? 0 : it->second;
    if (count >= stored_at.size()) continue;
    report.counts.hidden += static_cast<int>(stored_at.size() - count);
    std::string seen = count == 0 ? "does not show it"
                                  : "shows it " + std::to_string(count) + " of " +
                                        std::to_string(stored_at.size()) + " times";
    AddExample(report, "hidden",
               {guest, content,
                "PostgreSQL holds it (sequence " + std::to_string(rows[stored_at.front()].sequence) +
                    "); the final GET on " + shown.instance + " " + seen + " (the GET shows " +
                    std::to_string(shown.contents.size()) + " messages, PostgreSQL holds " +
                    std::to_string(rows.size()) + ")"});
  }
  std::size_t in_order = LongestIncreasing(shown_positions);
  if (in_order == shown_positions.size()) return;
  report.counts.out_of_order += static_cast<int>(shown_positions.size() - in_order);
  for (std::size_t i = 1; i < shown_positions.size(); ++i) {
    if (shown_positions[i] > shown_positions[i - 1]) continue;
    const auto& earlier = rows[shown_positions[i - 1]];
    const auto& later = rows[shown_positions[i]];
    AddExample(
        report, "out of order",
        {guest, later.content,
         "the final GET on " + shown.instance + " shows it (sequence " + std::to_string(later.sequence) +
             ") at position " + std::to_string(shown_index[i]) + ", after " + Quote(earlier.content) +
             " (sequence " + std::to_string(earlier.sequence) + ")"});
    break;
  }
}

void CountLedger(const CaseEvidence& evidence, CaseReport& report) {
  auto& counts = report.counts;
  for (const auto& message : evidence.messages) {
    counts.attempts += static_cast<int>(message.attempts.size() + message.repeat_attempts.size());
    if (!message.attempts.empty()) counts.retries += static_cast<int>(message.attempts.size() - 1);
    if (!message.repeat_attempts.empty()) {
      ++counts.repeats;
      counts.retries += static_cast<int>(message.repeat_attempts.size() - 1);
    }
    for (const auto* list : {&message.attempts, &message.repeat_attempts}) {
      for (const auto& attempt : *list) counts.replays_seen += attempt.ok() && attempt.replayed ? 1 : 0;
    }
    if (message.Acknowledgement() != nullptr) {
      ++counts.acknowledged;
    } else {
      ++counts.abandoned;
    }
  }
}

// Messages (guest, content) found stored twice by either check: counted once.
using MessageSet = std::set<std::pair<std::string, std::string>>;

// Acknowledged messages PostgreSQL lacks, and repeats answered as new ones.
void CheckAcknowledged(const CaseEvidence& evidence, CaseReport& report, MessageSet& stored_twice) {
  std::map<std::string, std::multiset<std::string>> stored_contents;
  for (const auto& [guest, rows] : evidence.stored) {
    for (const auto& row : rows) stored_contents[guest].insert(row.content);
  }
  for (const auto& message : evidence.messages) {
    const Attempt* ack = message.Acknowledgement();
    if (ack == nullptr) continue;
    auto guest = stored_contents.find(message.guest);
    if (guest == stored_contents.end() || guest->second.count(message.content) == 0) {
      ++report.counts.lost;
      AddExample(report, "lost",
                 {message.guest, message.content,
                  "acknowledged at " + Time(ack->answered) + " by stowaged " + std::to_string(ack->instance) +
                      " (message_id " + std::to_string(ack->message_id) + ", sequence " +
                      std::to_string(ack->sequence) + ", after " + std::to_string(message.attempts.size()) +
                      " attempt(s)); PostgreSQL does not hold it"});
    }
    const Attempt* repeat = message.RepeatAnswer();
    if (repeat == nullptr) continue;
    if (!repeat->replayed || repeat->message_id != ack->message_id) {
      stored_twice.insert({message.guest, message.content});
      AddExample(
          report, "stored twice",
          {message.guest, message.content,
           "the deliberate repeat (key " + message.key + ") to stowaged " + std::to_string(repeat->instance) +
               " was answered message_id " + std::to_string(repeat->message_id) +
               (repeat->replayed ? " with" : " without") + " Idempotent-Replayed; expected message_id " +
               std::to_string(ack->message_id) + " replayed"});
    }
  }
}

void CheckStoredOnce(const std::string& guest, const std::vector<StoredMessage>& rows, CaseReport& report,
                     MessageSet& stored_twice) {
  std::map<std::string, std::vector<const StoredMessage*>> copies;
  for (const auto& row : rows) copies[row.content].push_back(&row);
  for (const auto& [content, list] : copies) {
    if (list.size() < 2) continue;
    stored_twice.insert({guest, content});
    std::string where;
    for (const auto* row : list) {
      where += (where.empty() ? "" : ", ") + std::string("id ") + std::to_string(row->id) + " sequence " +
               std::to_string(row->sequence);
    }
    AddExample(
        report, "stored twice",
        {guest, content, "PostgreSQL holds it " + std::to_string(list.size()) + " times (" + where + ")"});
  }
}

void MeasureOutages(const CaseEvidence& evidence, CaseReport& report) {
  auto windows = PostFailureWindows(evidence.messages);
  for (const auto& window : windows) {
    if (!report.longest_window || window.length() > report.longest_window->length())
      report.longest_window = window;
  }
  for (const auto& fault : evidence.faults) report.outages.push_back({fault});
  report.before_faults.fault.name = "warm-up, before the first fault";
  // The outage of the last fault that began at or before `t`.
  auto outage_at = [&report](Seconds t) {
    FaultOutage* outage = &report.before_faults;
    for (auto& candidate : report.outages) {
      if (candidate.fault.started <= t) outage = &candidate;
    }
    return outage;
  };
  for (const auto& window : windows) {
    FaultOutage* outage = outage_at(window.to);
    outage->failing += window.length();
    outage->longest = std::max(outage->longest, window.length());
    outage->failed_attempts += window.failed_attempts;
  }
  for (const auto& message : evidence.messages) {
    for (const auto* list : {&message.attempts, &message.repeat_attempts}) {
      for (const auto& attempt : *list) {
        // By its answer: a stall belongs to the fault that ended it.
        FaultOutage* outage = outage_at(attempt.answered);
        outage->slowest_attempt = std::max(outage->slowest_attempt, attempt.answered - attempt.sent);
      }
    }
  }
}

}  // namespace

std::vector<std::string> CaseReport::Failures() const {
  std::vector<std::string> names;
  auto check = [&names](int count, const char* name) {
    if (count != 0) names.emplace_back(name);
  };
  check(counts.lost, "lost");
  check(counts.stored_twice, "stored twice");
  check(counts.orphaned, "orphaned");
  check(counts.hidden, "hidden");
  check(counts.out_of_order, "out of order");
  check(counts.online_violations, "online violations");
  check(counts.sequence_gaps, "sequence gaps");
  return names;
}

std::optional<Example> CheckOnlineGet(const std::string& guest, const std::vector<AckedMessage>& acked_before,
                                      const std::vector<std::string>& shown) {
  std::unordered_map<std::string, std::vector<std::size_t>> where_shown;
  for (std::size_t i = 0; i < shown.size(); ++i) where_shown[shown[i]].push_back(i);

  // Each acknowledged message once, then their positions in sequence order.
  std::vector<std::pair<std::int64_t, std::size_t>> by_sequence;  // (sequence, position shown)
  std::vector<const AckedMessage*> messages;
  for (const auto& acked : acked_before) {
    auto it = where_shown.find(acked.content);
    std::size_t times = it == where_shown.end() ? 0 : it->second.size();
    if (times != 1) {
      return Example{guest, acked.content,
                     "acknowledged with sequence " + std::to_string(acked.sequence) +
                         " before the GET was sent; the GET shows it " + std::to_string(times) +
                         " times (of " + std::to_string(shown.size()) + " messages shown)"};
    }
    by_sequence.emplace_back(acked.sequence, it->second.front());
  }
  std::sort(by_sequence.begin(), by_sequence.end());
  for (std::size_t i = 1; i < by_sequence.size(); ++i) {
    const auto& [earlier_sequence, earlier_position] = by_sequence[i - 1];
    const auto& [sequence, position] = by_sequence[i];
    // Equal sequences (themselves a fault, counted elsewhere) have no order.
    if (sequence == earlier_sequence || position > earlier_position) continue;
    return Example{guest, shown[position],
                   "acknowledged with sequence " + std::to_string(sequence) +
                       ", the GET shows it at position " + std::to_string(position) + ", before " +
                       Quote(shown[earlier_position]) + " (sequence " + std::to_string(earlier_sequence) +
                       ", at position " + std::to_string(earlier_position) + ")"};
  }
  return std::nullopt;
}

std::vector<FailureWindow> PostFailureWindows(const std::vector<MessageRecord>& messages) {
  std::vector<const Attempt*> attempts;
  for (const auto& message : messages) {
    for (const auto& attempt : message.attempts) attempts.push_back(&attempt);
    for (const auto& attempt : message.repeat_attempts) attempts.push_back(&attempt);
  }
  std::stable_sort(attempts.begin(), attempts.end(),
                   [](const Attempt* a, const Attempt* b) { return a->answered < b->answered; });
  std::vector<FailureWindow> windows;
  std::optional<FailureWindow> open;
  Seconds last_ok = -std::numeric_limits<Seconds>::infinity();
  Seconds last_failure = 0;
  for (const auto* attempt : attempts) {
    if (attempt->ok()) {
      if (open) {
        open->to = attempt->answered;
        windows.push_back(*open);
        open.reset();
      }
      last_ok = attempt->answered;
      continue;
    }
    if (!open) open = FailureWindow{std::max(attempt->sent, last_ok), 0, 0};
    ++open->failed_attempts;
    last_failure = attempt->answered;
  }
  if (open) {
    open->to = last_failure;
    windows.push_back(*open);
  }
  return windows;
}

CaseReport CheckCase(const CaseEvidence& evidence) {
  CaseReport report;
  CountLedger(evidence, report);
  MessageSet stored_twice;
  CheckAcknowledged(evidence, report, stored_twice);
  for (const auto& [guest, rows] : evidence.stored) {
    CheckStoredOnce(guest, rows, report, stored_twice);
    CheckSequences(guest, rows, report);
  }
  report.counts.stored_twice = static_cast<int>(stored_twice.size());
  static const std::vector<StoredMessage> kNoRows;
  for (const auto& [guest, histories] : evidence.shown) {
    auto stored = evidence.stored.find(guest);
    const auto& rows = stored == evidence.stored.end() ? kNoRows : stored->second;
    for (const auto& shown : histories) CheckShown(guest, rows, shown, report);
  }
  report.counts.online_checks = evidence.online_checks;
  report.counts.online_violations = evidence.online_violations;
  for (const auto& example : evidence.online_examples) AddExample(report, "online violations", example);
  MeasureOutages(evidence, report);
  return report;
}

void PrintReport(const std::string& title, const CaseReport& report, std::ostream& out) {
  const auto& c = report.counts;
  char line[160];
  auto row = [&](const char* name, int value, const std::string& note = "") {
    std::snprintf(line, sizeof line, "  | %-20s | %8d |", name, value);
    out << line << (note.empty() ? "" : "  " + note) << "\n";
  };
  out << "\n== " << title << " ==\n";
  out << "  | count                |    value |\n";
  out << "  |----------------------|----------|\n";
  row("acknowledged", c.acknowledged);
  row("abandoned", c.abandoned, "never acknowledged");
  row("attempts", c.attempts);
  row("retries", c.retries);
  row("repeats", c.repeats, "deliberate, after a 200");
  row("replays seen", c.replays_seen);
  row("lost *", c.lost);
  row("stored twice *", c.stored_twice);
  row("orphaned *", c.orphaned);
  row("hidden *", c.hidden);
  row("out of order *", c.out_of_order);
  row("online violations *", c.online_violations, "of " + std::to_string(c.online_checks) + " GETs checked");
  row("sequence gaps *", c.sequence_gaps);
  if (report.longest_window) {
    const auto& w = *report.longest_window;
    out << "  longest window in which POSTs failed: " << Duration(w.length()) << " (" << Time(w.from)
        << " to " << Time(w.to) << ", " << w.failed_attempts << " failed attempts)\n";
  } else {
    out << "  longest window in which POSTs failed: none (no POST failed)\n";
  }
  out << "  faults:\n";
  auto outage_line = [&](const FaultOutage& outage, bool with_times) {
    out << "    ";
    if (with_times) {
      std::snprintf(line, sizeof line, "%-10s %-46s cleared %-10s", Time(outage.fault.started).c_str(),
                    outage.fault.name.c_str(), Time(outage.fault.cleared).c_str());
      out << line;
    } else {
      std::snprintf(line, sizeof line, "%-10s %-46s %-18s", "", outage.fault.name.c_str(), "");
      out << line;
    }
    out << " POSTs failed " << Duration(outage.failing) << " (longest " << Duration(outage.longest) << ", "
        << outage.failed_attempts << " failed attempts); slowest POST " << Duration(outage.slowest_attempt)
        << "\n";
  };
  outage_line(report.before_faults, false);
  for (const auto& outage : report.outages) outage_line(outage, true);
  if (!report.examples.empty()) out << "  examples (the first " << kMaxExamples << " of each):\n";
  for (const auto& [count, examples] : report.examples) {
    for (const auto& example : examples) {
      out << "    " << count << ": guest " << example.guest;
      if (!example.content.empty()) out << ", " << Quote(example.content);
      out << ": " << example.detail << "\n";
    }
  }
  auto failures = report.Failures();
  if (failures.empty()) {
    out << "  result: PASSED\n";
  } else {
    out << "  result: FAILED (";
    for (std::size_t i = 0; i < failures.size(); ++i) out << (i ? ", " : "") << failures[i];
    out << ")\n";
  }
}

}  // namespace stowage::faults
