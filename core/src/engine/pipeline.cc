#include "engine/pipeline.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
#include <optional>

#include "engine/call_runner.h"
#include "engine/stage_calls.h"
#include "engine/journal_replayer.h"
#include "idempotency/idempotency_store.h"
#include "journal/journal_store.h"
#include "logging/logging.h"
#include "observability/metrics.h"

namespace stowage::engine {

using stowage::Deadline;
using stowage::Status;

namespace {

// A stage and what it was given at construction, which it keeps references
// to: destroyed in reverse order, the stage first.
struct StageWithEnvironment {
  std::shared_ptr<database::PostgresDatabase> database;
  std::shared_ptr<stowage::Logger> logger;
  std::unique_ptr<stowage::StageEnvironment> env;
  std::shared_ptr<stowage::Stage> stage;  // its deleter holds the plugin library
};

}  // namespace

Pipeline::~Pipeline() = default;

BuildResult Pipeline::Build(const config::PipelineConfig& cfg, const Pipeline* previous,
                            observability::Registry* metrics) {
  BuildResult result;
  auto pipeline = std::shared_ptr<Pipeline>(new Pipeline());
  pipeline->config_ = cfg;
  pipeline->metrics_ = metrics ? metrics : previous ? previous->metrics_ : nullptr;
  pipeline->runner_ = previous ? previous->runner_ : std::make_shared<CallRunner>();

  for (const auto& settings : cfg.databases) {
    std::shared_ptr<database::PostgresDatabase> kept;
    if (previous) {
      for (std::size_t i = 0; i < previous->config_.databases.size(); ++i)
        if (config::SameSettings(previous->config_.databases[i], settings)) kept = previous->databases_[i];
    }
    if (!kept) {
      kept = std::make_shared<database::PostgresDatabase>(
          settings, logging::MakeStageLogger("Database " + settings.name));
    }
    pipeline->databases_.push_back(std::move(kept));
  }

  loader::PluginLoader loader(cfg.server.plugin_path);
  const auto base_folder = cfg.file.parent_path();
  const std::string file = cfg.file.string();

  for (const auto& settings : cfg.stages) {
    std::shared_ptr<database::PostgresDatabase> db;
    if (!settings.database.empty()) {
      for (const auto& candidate : pipeline->databases_)
        if (candidate->name() == settings.database) db = candidate;
    }
    // An unchanged stage on an unchanged database, whose plugin file holds
    // the same content, is the previous one itself. A plugin rebuilt since
    // is loaded anew and the stage made again from it; the previous stage
    // runs the old code until the requests that hold it are done.
    std::shared_ptr<StageInstance> old;
    if (previous) {
      for (const auto& candidate : previous->stages_)
        if (candidate->name() == settings.name) old = candidate;
    }
    if (old && config::SameSettings(old->settings, settings) && old->database == db &&
        (!old->plugin || loader.Load(settings.plugin, base_folder).plugin == old->plugin)) {
      pipeline->stages_.push_back(std::move(old));
      continue;
    }

    auto instance = std::make_shared<StageInstance>();
    instance->settings = settings;
    const std::string where =
        file + ":" + std::to_string(settings.where.line) + ": stage[" + settings.name + "]";
    if (!settings.enabled) {
      pipeline->stages_.push_back(std::move(instance));
      continue;
    }
    if (!settings.database.empty()) {
      instance->database = db;
      if (instance->database == nullptr) {
        result.errors.push_back(where + ".database: no [[database]] is named '" + settings.database +
                                "'; declare it or fix the name");
        continue;
      }
    }
    auto loaded = loader.Load(settings.plugin, base_folder);
    for (auto& warning : loaded.warnings) result.warnings.push_back(where + ": " + warning);
    if (!loaded.plugin) {
      result.errors.push_back(where + ".plugin: " + loaded.error);
      continue;
    }
    instance->plugin = loaded.plugin;

    stowage::StageConfig stage_config;
    auto errors = config::ValidateStageConfig(settings, file, loaded.plugin->schema(), &stage_config);
    if (!errors.empty()) {
      for (const auto& error : errors) result.errors.push_back(error.ToString());
      continue;
    }

    instance->logger = logging::MakeStageLogger(loaded.plugin->info().label, settings.name);
    auto made = std::make_shared<StageWithEnvironment>();
    made->database = instance->database;
    made->logger = instance->logger;
    made->env = std::make_unique<stowage::StageEnvironment>(
        stowage::StageEnvironment{*made->logger, made->database.get()});
    Status error;
    made->stage = loaded.plugin->Create(stage_config, *made->env, &error);
    if (!made->stage) {
      result.errors.push_back(where + ": the stage could not be created by " +
                              loaded.plugin->path().string() + ": " + error.ToString());
      continue;
    }
    // Shares ownership of the whole: whoever holds the stage holds what it uses.
    stowage::Stage* const stage = made->stage.get();
    instance->stage = std::shared_ptr<stowage::Stage>(std::move(made), stage);
    instance->target = instance->stage->target();
    instance->keeps_deadlines = loaded.plugin->keeps_deadlines();
    instance->after_commit = loaded.plugin->after_commit();
    if (instance->after_commit && instance->database) {
      result.errors.push_back(where + ".database: the stage runs after the COMMIT (a copy of what the databases " +
                              "hold, e.g. a cache) and cannot join a [[database]]'s transaction; remove the key");
      continue;
    }
    if (!instance->required() && settings.circuit_threshold > 0) {
      instance->breaker = std::make_shared<CircuitBreaker>(
          CircuitBreaker::Options{settings.circuit_threshold, settings.circuit_cooldown});
    }
    if (pipeline->metrics_) {
      instance->metrics = MetricsOf(*pipeline->metrics_, settings.name);
      constexpr const char* kCompensations = "stowage_stage_compensations_total";
      constexpr const char* kCompensationsHelp =
          "Writes of a stage outside the databases compensated because a later required stage failed, by "
          "outcome: ok, failed (the message may remain in the target).";
      instance->counters->compensated_total = &pipeline->metrics_->counter(
          kCompensations, kCompensationsHelp, {{"stage", settings.name}, {"outcome", "ok"}});
      instance->counters->compensation_failed_total = &pipeline->metrics_->counter(
          kCompensations, kCompensationsHelp, {{"stage", settings.name}, {"outcome", "failed"}});
      if (instance->breaker) {
        instance->metrics.circuit = &pipeline->metrics_->gauge(
            "stowage_circuit_state",
            "Circuit state of a best_effort stage: 0 closed, 1 open, 2 half_open.",
            {{"stage", settings.name}});
        instance->metrics.circuit->Set(0);
      }
    }
    pipeline->stages_.push_back(std::move(instance));
  }

  // After-commit stages wait for a COMMIT when there is one to wait for, and
  // Idempotency-Keys go to the database of the store (the first required
  // stage with a database).
  std::shared_ptr<database::PostgresDatabase> keys_database;
  bool keys_database_required = false;
  for (const auto& s : pipeline->stages_) {
    if (!s->stage || !s->database) continue;
    pipeline->defers_after_commit_ = true;
    if (!keys_database || (s->required() && !keys_database_required)) {
      keys_database_required = s->required();
      keys_database = s->database;
    }
  }
  if (keys_database) {
    if (previous && previous->idempotency_ && &previous->idempotency_->database() == keys_database.get()) {
      pipeline->idempotency_ = previous->idempotency_;
    } else {
      pipeline->idempotency_ = std::make_shared<idempotency::IdempotencyStore>(
          keys_database, logging::MakeStageLogger("Database " + keys_database->name()));
    }
  }

  // Journals: what a best_effort stage failed to store is journaled in its
  // own database (in the message's transaction), or, for a stage without
  // one, in the database of the Idempotency-Keys.
  auto journal_in = [&](const std::shared_ptr<database::PostgresDatabase>& db) {
    for (const auto& kept : pipeline->journals_)
      if (&kept->database() == db.get()) return kept;
    std::shared_ptr<journal::JournalStore> store;
    if (previous) {
      for (const auto& old : previous->journals_)
        if (&old->database() == db.get()) store = old;
    }
    if (!store) store = std::make_shared<journal::JournalStore>(db, logging::MakeStageLogger("Journal " + db->name()));
    pipeline->journals_.push_back(store);
    return store;
  };
  for (const auto& s : pipeline->stages_) {
    if (!s->stage) continue;
    if (s->journal) {  // a stage kept from the previous generation, as it was
      auto& journals = pipeline->journals_;
      if (std::find(journals.begin(), journals.end(), s->journal) == journals.end()) journals.push_back(s->journal);
      continue;
    }
    const std::string where = file + ":" + std::to_string(s->settings.where.line) + ": stage[" + s->name() + "]";
    if (s->after_commit && s->settings.journal.value_or(false)) {
      result.errors.push_back(where + ".journal: the stage runs after the COMMIT and keeps its copy coherent " +
                              "itself (docs/engine.md); it is never journaled: remove journal = true");
      continue;
    }
    if (!s->settings.journal.value_or(!s->required() && !s->after_commit)) continue;
    const auto& db = s->database ? s->database : keys_database;
    if (!db) {
      result.warnings.push_back(where + ": what this best_effort stage fails to store is not journaled: the " +
                                "pipeline has no [[database]] to keep the journal in (docs/operations.md)");
      continue;
    }
    s->journal = journal_in(db);
  }

  if (result.errors.empty()) result.pipeline = std::move(pipeline);
  return result;
}

void Pipeline::StartReplay() {
  if (replayer_ || journals_.empty()) return;
  // The journal's table, before the first write that may need it (a write
  // finds it ready or journals nothing; the replayer tries again each round).
  for (const auto& store : journals_) {
    Status ready = store->EnsureSchema(Deadline::After(std::chrono::seconds(2)));
    if (!ready.ok()) {
      spdlog::warn("the journal's table in database '" + store->database().name() +
                   "' is not ready yet (tried again every second; until then failures of best_effort stages " +
                   "are not journaled): " + ready.ToString());
    }
  }
  replayer_ = std::make_unique<JournalReplayer>(*this, metrics_);
}

void Pipeline::StopReplay() {
  if (replayer_) replayer_->Stop();
}

std::vector<journal::Backlog> Pipeline::JournalBacklogs() const {
  return replayer_ ? replayer_->backlogs() : std::vector<journal::Backlog>{};
}

const StageInstance* Pipeline::stage(const std::string& name) const noexcept {
  for (const auto& s : stages_)
    if (s->name() == name) return s.get();
  return nullptr;
}

std::vector<StageHealth> Pipeline::Health(std::chrono::milliseconds timeout) const {
  const auto deadline = Deadline::After(timeout);
  std::vector<StageHealth> out;
  std::vector<std::optional<std::future<Status>>> pending;
  for (const auto& s : stages_) {
    out.push_back({s->name(), s->required(), s->stage != nullptr, Status::Ok()});
    pending.emplace_back();
    if (!s->stage) continue;
    auto answer = std::make_shared<std::promise<Status>>();
    pending.back() = answer->get_future();
    std::shared_ptr<stowage::Stage> stage = s->stage;
    runner_->Submit([stage, answer, deadline]() { answer->set_value(HealthOf(*stage, deadline)); });
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (!pending[i]) continue;
    if (pending[i]->wait_until(deadline.at()) == std::future_status::ready) {
      out[i].status = pending[i]->get();
    } else {
      out[i].status =
          Status::DeadlineExceeded("health() did not answer within " + std::to_string(timeout.count()) +
                                   " ms; check that the stage's target is reachable");
    }
  }
  return out;
}

void Pipeline::Report(stowage::RequestKind kind, const std::string& guest_id, bool ok, bool cache_hit,
                      Clock::time_point started, const stowage::Attributes* attributes) const noexcept {
  stowage::RequestReport report{
      kind, guest_id, ok, cache_hit,
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started), attributes};
  for (const auto& s : stages_)
    if (s->stage) s->stage->observe(report);
}

namespace {

// Where the messages a stage's read() served under `asked` stand in the
// guest's history.
struct Served {
  std::uint64_t total = 0;  // how many messages the guest has
  std::uint64_t first = 0;  // the sequence of the page's first message
  // The stage returned the whole history (it ignored the range): the page
  // is still to be cut from it, and it may refill a cache.
  bool whole_history = false;
  // The messages served are the guest's whole history.
  bool complete = false;
};

// What a stage that served `count` messages under `asked` served. A stage
// that honoured the range (it set `answered->total`) must have returned
// exactly the page the range and its total imply; else the read fails.
Status PlaceServed(const stowage::ReadRange& asked, const stowage::ReadRange* answered, std::size_t count,
                   Served* served) {
  if (answered == nullptr || !answered->total) {
    served->total = count;
    served->first = asked.first(count);
    served->whole_history = true;
    served->complete = true;
    return Status::Ok();
  }
  served->total = *answered->total;
  served->first = asked.first(served->total);
  const std::uint64_t expected = asked.end(served->total) - served->first;
  if (count != expected) {
    return Status::Internal("read() set ReadRange::total to " + std::to_string(served->total) + " but returned " +
                            std::to_string(count) + " messages where that page holds " + std::to_string(expected) +
                            "; a stage that honours the range returns exactly the page (stowage/context.h)");
  }
  served->complete = served->first == 0 && expected == served->total;
  return Status::Ok();
}

}  // namespace

ReadOutcome Pipeline::Read(const std::string& guest_id, const stowage::ReadRange& range) {
  const auto started = Clock::now();
  ReadOutcome outcome;
  // The stages that missed, each with what its read() left for its refill().
  std::vector<std::pair<const StageInstance*, std::shared_ptr<stowage::Attributes>>> missed;
  Status required_failure;
  std::string required_failed_stage;
  bool first_asked = true;
  bool cache_hit = false;
  // What each stage is asked for: only what a client asked for, never an
  // answer another stage left in it.
  stowage::ReadRange asked{range.before, range.limit, std::nullopt};

  for (const auto& owned : stages_) {
    const StageInstance* s = owned.get();
    if (!s->stage) continue;
    if (!Admitted(*s)) {
      outcome.degraded.push_back(s->name());
      continue;
    }
    const auto began = Clock::now();
    auto notes = std::make_shared<stowage::Attributes>();
    // A fresh copy per call: a call the engine stopped waiting for may still
    // write to its own.
    auto page = asked.bounded() ? std::make_shared<stowage::ReadRange>(asked) : nullptr;
    auto result = CallGuest<stowage::ReadResult>(
        *runner_, *s, guest_id, [](stowage::Stage& stage, stowage::GuestContext& ctx) { return stage.read(ctx); },
        notes, page);
    Status status = result ? result->status : TimedOutStatus("read", s->settings.timeout);
    Served served;
    if (status.ok() && result->found) status = PlaceServed(asked, page.get(), result->messages.size(), &served);
    Count(*s, status, began, true);
    const bool was_first = first_asked;
    first_asked = false;
    if (!status.ok()) {
      s->logger->warn("could not read guest " + guest_id + " (" + PolicyText(*s) + "): " + status.ToString());
      outcome.degraded.push_back(s->name());
      if (s->required() && required_failure.ok()) {
        required_failure = status;
        required_failed_stage = s->name();
      }
      continue;
    }
    if (!result->found) {
      missed.emplace_back(s, std::move(notes));
      continue;
    }
    outcome.served_by = s->name();
    cache_hit = was_first;
    // Refill the stages before this one that held nothing, so the next read
    // is served earlier in the pipeline: only with a whole history, since a
    // stage that holds a guest serves every page of it. After a page, they
    // keep missing until a read that ends in a whole history.
    if (served.complete) {
      for (const auto& [m, notes] : missed) {
        const auto& messages = result->messages;
        auto refilled = CallGuest<Status>(
            *runner_, *m, guest_id,
            [messages](stowage::Stage& stage, stowage::GuestContext& ctx) { return stage.refill(ctx, messages); },
            notes);
        Status refill_status = refilled ? *refilled : TimedOutStatus("refill", m->settings.timeout);
        if (!refill_status.ok())
          m->logger->warn("could not refill guest " + guest_id + ": " + refill_status.ToString());
      }
    }
    outcome.messages = std::move(result->messages);
    outcome.total = served.total;
    outcome.first_sequence = served.first;
    if (served.whole_history) {
      // Cut the page out of the whole history: [first, end).
      const auto end = static_cast<std::ptrdiff_t>(asked.end(served.total));
      outcome.messages.erase(outcome.messages.begin() + end, outcome.messages.end());
      outcome.messages.erase(outcome.messages.begin(),
                             outcome.messages.begin() + static_cast<std::ptrdiff_t>(served.first));
    }
    Report(stowage::RequestKind::kRead, guest_id, true, cache_hit, started);
    return outcome;
  }
  if (!required_failure.ok()) {
    outcome.status = std::move(required_failure);
    outcome.failed_stage = std::move(required_failed_stage);
  }
  Report(stowage::RequestKind::kRead, guest_id, outcome.status.ok(), false, started);
  return outcome;
}

SearchOutcome Pipeline::Search(const std::string& guest_id, const std::string& query, std::size_t k) {
  const auto started = Clock::now();
  SearchOutcome outcome;
  for (const auto& owned : stages_) {
    const StageInstance* s = owned.get();
    if (!s->stage) continue;
    const auto began = Clock::now();
    auto result = CallGuest<stowage::SearchResult>(
        *runner_, *s, guest_id, [query, k](stowage::Stage& stage, stowage::GuestContext& ctx) {
          return stage.search(ctx, query, k);
        });
    if (result && !result->supported) continue;
    outcome.supported = true;
    Status status = result ? result->status : TimedOutStatus("search", s->settings.timeout);
    Count(*s, status, began);
    if (!status.ok()) {
      s->logger->warn("could not search guest " + guest_id + ": " + status.ToString());
      outcome.status = std::move(status);
      outcome.failed_stage = s->name();
    } else {
      outcome.hits = std::move(result->hits);
    }
    break;
  }
  Report(stowage::RequestKind::kSearch, guest_id, outcome.status.ok(), false, started);
  return outcome;
}

}  // namespace stowage::engine
