// stowage: the operator's command-line tool.
//
//   stowage validate [--no-environment] FILE
//                           check a pipeline.toml, every stage plugin it names and
//                           (unless --no-environment) each enabled stage's target
//   stowage migrate FILE    prepare every enabled stage's storage (schemas) and check it
//   stowage graph FILE      the pipeline as Graphviz DOT
//   stowage journal list|replay|drop FILE [options]
//                           what best_effort stages failed to store, in the
//                           journal of each [[database]]: list, make due, drop
//   stowage version         the version, SDK, git revision, Boost, compiler and host ABI
//
// `validate --no-environment` loads each plugin and checks the stage's config
// table against the plugin's schema, but constructs no stage: it touches no
// storage target. Without the flag it then builds the pipeline and asks each
// enabled stage for its health.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "config/pipeline_config.h"
#include "database/postgres_database.h"
#include "engine/pipeline.h"
#include "journal/journal_store.h"
#include "loader/plugin_loader.h"
#include "logging/logging.h"
#include "stowage/plugin.h"
#include "version_info.h"

namespace {

constexpr const char* kUsage = R"(Usage:
  stowage validate [--no-environment] FILE
                          check FILE (a pipeline.toml): its keys, each stage's plugin
                          (found, loadable, built for this host) and each stage's
                          config table against the plugin's schema; prints one line
                          per stage. Then creates every enabled stage (as stowaged
                          does at start) and asks each for its health within 5 s,
                          printing "NAME  target=TARGET  ok" or the reason it is
                          unreachable. --no-environment stops after the file check:
                          no stage is created and no storage target is contacted.
  stowage migrate FILE    create every enabled stage of FILE, which creates or
                          migrates its storage (e.g. the PostgreSQL stage's tables,
                          versioned in stowage_schema_migrations), then checks each
                          stage's health. Safe to run while servers run, and twice.
                          Prints one line per stage.
  stowage graph FILE      print the pipeline of FILE as a Graphviz DOT graph on stdout:
                          its stages in order (required solid, best_effort dashed,
                          disabled grey) and its [[database]] entries. Contacts
                          nothing. Render it with e.g. `stowage graph FILE | dot -Tsvg`.
  stowage journal list FILE [--stage S] [--parked] [--id N] [--limit N]
                          list what best_effort stages failed to store and is kept
                          for replay in the journal (table stowage_journal) of each
                          [[database]] of FILE, oldest first, at most N (1 to 1000,
                          default 100): one line per entry,
                          "ID  STAGE  GUEST  created=...  attempts=N  parked|pending
                          reason: ...  last error: ...", then per stage the counts of
                          pending and parked entries. The message's content is not
                          shown. --parked lists parked entries only (those that
                          failed replay_max_attempts times or outlived
                          replay_max_age, and wait for an operator).
  stowage journal replay FILE [--stage S] [--id N] [--parked]
                          make the selected entries due now: parked ones become
                          pending again with their attempts reset; a running
                          stowaged replays them at its next round. Prints
                          "requeued N entries".
  stowage journal drop FILE (--stage S | --id N) [--parked]
                          delete the selected entries for good (their messages are
                          then never stored by that stage); needs --stage or --id.
                          Prints "dropped N entries".
  stowage version, stowage --version
                          print the stowage version, the SDK version, the git
                          revision it was built from, Boost, the compiler and the
                          host ABI a plugin must match
  stowage --help          print this help

Exit codes:
  0  success (validate: the file is valid and every enabled stage's target
     answered; migrate: every stage is ready; graph: the graph was printed)
  1  validate, graph: the file or a plugin has errors; each is printed to stderr
     with file:line:column and the key. migrate: the same, or a stage could not
     prepare or reach its storage (the stage and the reason are printed).
     journal: the file has errors or no [[database]], or a database failed (its
     name and the reason are printed; the other databases were still done)
  2  usage error
  3  validate: the file is valid but an enabled stage's target did not answer
     (each such stage and the reason are printed to stderr)
)";

int Usage(const std::string& error) {
  std::cerr << "stowage: " << error << "\n\n" << kUsage;
  return 2;
}

// Loads `file`, printing its errors to stderr; nullopt when it has any.
std::optional<stowage::config::PipelineConfig> LoadOrReport(const std::string& file) {
  auto loaded = stowage::config::LoadPipelineConfig(file);
  if (!loaded.errors.empty() || !loaded.config) {
    for (const auto& error : loaded.errors) std::cerr << error.ToString() << "\n";
    if (loaded.errors.empty()) std::cerr << file << ": the configuration could not be loaded\n";
    return std::nullopt;
  }
  return std::move(loaded.config);
}

// Creates the enabled stages of `pipeline` and asks each for its health (and
// its [[database]]'s, when it joins one), all at once, within kTargetTimeout.
// Returns 0 when every target answered, 3 when one did not, 1 when a stage
// could not be created.
int CheckTargets(const stowage::config::PipelineConfig& pipeline) {
  constexpr auto kTargetTimeout = std::chrono::seconds(5);
  stowage::logging::SetLevel(pipeline.log.level);
  auto built = stowage::engine::Pipeline::Build(pipeline);
  for (const auto& warning : built.warnings) std::cerr << "warning: " << warning << "\n";
  if (!built.pipeline) {
    for (const auto& error : built.errors) std::cerr << error << "\n";
    std::cerr << pipeline.file.string() << ": " << built.errors.size()
              << " stage(s) could not be created; fix them and run stowage validate again\n";
    return 1;
  }
  const stowage::Deadline deadline = stowage::Deadline::After(kTargetTimeout);
  struct Check {
    std::string name;
    std::string target;
    std::future<stowage::Status> health;  // invalid when the stage is disabled
  };
  std::vector<Check> checks;
  for (const auto& stage : built.pipeline->stages()) {
    Check check{stage->name(), stage->target, {}};
    if (stage->stage) {
      // A thread of its own, so that a stage that overruns the deadline
      // holds up neither the others nor the report.
      std::packaged_task<stowage::Status()> task([stage = stage.get(), deadline]() -> stowage::Status {
        try {
          if (stage->database) {
            stowage::Status db = stage->database->Health(deadline);
            if (!db.ok()) return db;
          }
          return stage->stage->health(deadline);
        } catch (...) {
          return stowage::internal::StatusFromCurrentException("health()");
        }
      });
      check.health = task.get_future();
      std::thread(std::move(task)).detach();
    }
    checks.push_back(std::move(check));
  }
  int unreachable = 0;
  bool overran = false;
  const auto give_up = std::chrono::steady_clock::now() + kTargetTimeout + std::chrono::seconds(1);
  for (auto& check : checks) {
    const std::string head = check.name + "  target=" + (check.target.empty() ? "-" : check.target) + "  ";
    if (!check.health.valid()) {
      std::cout << head << "disabled, not checked" << std::endl;
      continue;
    }
    if (check.health.wait_until(give_up) != std::future_status::ready) {
      overran = true;
      ++unreachable;
      std::cerr << head << "unreachable: health() did not return within "
                << std::chrono::seconds(kTargetTimeout).count() << " s\n";
      continue;
    }
    stowage::Status health = check.health.get();
    if (health.ok()) {
      std::cout << head << "ok" << std::endl;
    } else {
      ++unreachable;
      std::cerr << head << "unreachable: " << health.ToString() << "\n";
    }
  }
  if (unreachable > 0) {
    std::cerr << pipeline.file.string() << ": the file is valid but " << unreachable
              << " stage target(s) did not answer; start them or fix their addresses, or run stowage "
                 "validate --no-environment to check the file alone\n";
  }
  if (overran) {
    // A health() call is still running on a stage that would be destroyed
    // under it: leave without destroying anything.
    std::cout.flush();
    std::cerr.flush();
    std::_Exit(3);
  }
  return unreachable == 0 ? 0 : 3;
}

int Validate(const std::string& file, bool check_environment) {
  namespace config = stowage::config;
  auto loaded = LoadOrReport(file);
  if (!loaded) return 1;
  const config::PipelineConfig& pipeline = *loaded;

  std::vector<std::filesystem::path> search = pipeline.server.plugin_path;
  search.push_back(stowage::loader::PluginLoader::DefaultPluginFolder());
  stowage::loader::PluginLoader loader(search);
  const std::filesystem::path base = pipeline.file.parent_path();

  std::vector<std::string> errors;
  std::vector<std::string> lines;
  for (const auto& stage : pipeline.stages) {
    auto result = loader.Load(stage.plugin, base);
    for (const auto& warning : result.warnings)
      std::cerr << "warning: stage[" << stage.name << "]: " << warning << "\n";
    if (!result.plugin) {
      config::ConfigError error{stage.where, "stage[" + stage.name + "].plugin", result.error};
      errors.push_back(error.ToString());
      continue;
    }
    stowage::StageConfig values;
    auto config_errors = config::ValidateStageConfig(stage, file, result.plugin->schema(), &values);
    for (const auto& error : config_errors) errors.push_back(error.ToString());
    if (!config_errors.empty()) continue;
    lines.push_back(stage.name + "  plugin=" + result.plugin->path().filename().string() + " v" +
                    result.plugin->info().version + " sha256=" + result.plugin->sha256().substr(0, 12) +
                    "  policy=" + config::PolicyName(stage.policy) + "  " +
                    (stage.enabled ? "enabled" : "disabled") +
                    "  timeout=" + std::to_string(stage.timeout.count()) + "ms");
  }
  if (!errors.empty()) {
    for (const auto& error : errors) std::cerr << error << "\n";
    std::cerr << file << ": " << errors.size() << " error(s); fix them and run stowage validate again\n";
    return 1;
  }
  for (const auto& line : lines) std::cout << line << "\n";
  if (!check_environment) return 0;
  std::cout.flush();
  return CheckTargets(pipeline);
}

int Migrate(const std::string& file) {
  auto loaded = LoadOrReport(file);
  if (!loaded) return 1;
  stowage::logging::SetLevel(loaded->log.level);
  // Creating a stage prepares its storage; health() then proves it usable
  // (and finishes the preparation a stage deferred because its target was
  // unreachable at creation).
  auto built = stowage::engine::Pipeline::Build(*loaded);
  for (const auto& warning : built.warnings) std::cerr << "warning: " << warning << "\n";
  if (!built.pipeline) {
    for (const auto& error : built.errors) std::cerr << error << "\n";
    std::cerr << file << ": " << built.errors.size() << " error(s); nothing more was done\n";
    return 1;
  }
  int failed = 0;
  for (const auto& stage : built.pipeline->stages()) {
    if (!stage->stage) {
      std::cout << stage->name() << ": disabled, skipped\n";
      continue;
    }
    stowage::Status health = stage->stage->health(stowage::Deadline::After(std::chrono::seconds(30)));
    if (health.ok()) {
      std::cout << stage->name() << ": ready\n";
    } else {
      ++failed;
      std::cerr << stage->name() << ": not ready: " << health.ToString() << "\n";
    }
  }
  return failed == 0 ? 0 : 1;
}

// `text` as the inside of a DOT double-quoted string.
std::string DotEscape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

int Graph(const std::string& file) {
  namespace config = stowage::config;
  auto loaded = LoadOrReport(file);
  if (!loaded) return 1;
  const config::PipelineConfig& pipeline = *loaded;
  std::string out = "digraph pipeline {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n";
  for (const auto& stage : pipeline.stages) {
    std::vector<std::string> style;
    style.push_back(stage.policy == config::Policy::kRequired ? "solid" : "dashed");
    if (!stage.enabled) style.push_back("filled");
    out += "  \"stage:" + DotEscape(stage.name) + "\" [label=\"" + DotEscape(stage.name) +
           "\\nplugin: " + DotEscape(stage.plugin) + "\\n" + config::PolicyName(stage.policy) + "\\n" +
           (stage.enabled ? "enabled" : "disabled") + "\", style=\"" + style[0] +
           (style.size() > 1 ? "," + style[1] : "") + "\"" +
           (stage.enabled ? "" : ", color=grey, fillcolor=grey90, fontcolor=grey40") + "];\n";
  }
  for (std::size_t i = 1; i < pipeline.stages.size(); ++i) {
    out += "  \"stage:" + DotEscape(pipeline.stages[i - 1].name) +
           "\" -> \"stage:" + DotEscape(pipeline.stages[i].name) + "\";\n";
  }
  for (const auto& database : pipeline.databases) {
    // The URL is left out: it may hold a password.
    out += "  \"database:" + DotEscape(database.name) + "\" [shape=cylinder, label=\"database\\n" +
           DotEscape(database.name) + "\"];\n";
  }
  for (const auto& stage : pipeline.stages) {
    if (stage.database.empty()) continue;
    out += "  \"stage:" + DotEscape(stage.name) + "\" -> \"database:" + DotEscape(stage.database) +
           "\" [style=dotted, arrowhead=none" + (stage.enabled ? "" : ", color=grey") + "];\n";
  }
  out += "}\n";
  std::cout << out;
  return 0;
}

// ---------------------------------------------------------------------------
// stowage journal

// The arguments of `stowage journal ACTION FILE [options]`.
struct JournalArgs {
  std::string action;  // list, replay or drop
  std::string file;
  stowage::journal::Selection selection;
};

bool ValidStageName(std::string_view name) {
  return !name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

template <typename T>
bool ParseWhole(std::string_view text, T* out) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return error == std::errc() && end == text.data() + text.size();
}

// Parses `args` (after "journal"); returns the usage error, empty when fine.
std::string ParseJournalArgs(const std::vector<std::string_view>& args, JournalArgs* out) {
  if (args.empty())
    return "'journal' needs an action: list, replay or drop, e.g. stowage journal list pipeline.toml";
  out->action = std::string(args[0]);
  const bool list = out->action == "list", drop = out->action == "drop";
  if (!list && !drop && out->action != "replay")
    return "'journal' has no action '" + out->action + "'; use list, replay or drop";
  const std::string what = "'journal " + out->action + "'";
  const std::string options = list ? "--stage, --parked, --id and --limit" : "--stage, --id and --parked";
  std::vector<std::string_view> files;
  for (std::size_t i = 1; i < args.size(); ++i) {
    std::string_view arg = args[i];
    std::string_view value;
    bool has_value = false;
    if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    const bool takes_value = arg == "--stage" || arg == "--id" || (list && arg == "--limit");
    if (takes_value && !has_value) {
      if (i + 1 >= args.size()) return what + ": option " + std::string(arg) + " needs a value";
      value = args[++i];
    }
    if (arg == "--stage") {
      if (!ValidStageName(value))
        return what + ": --stage must be a stage name (letters, digits, _ and -); it is '" +
               std::string(value) + "'";
      out->selection.stage = std::string(value);
    } else if (arg == "--id") {
      std::int64_t id = 0;
      if (!ParseWhole(value, &id) || id < 1)
        return what + ": --id must be an entry's id, a whole number from 1; it is '" + std::string(value) +
               "'";
      out->selection.id = id;
    } else if (list && arg == "--limit") {
      std::size_t limit = 0;
      if (!ParseWhole(value, &limit) || limit < 1 || limit > 1000)
        return what + ": --limit must be a whole number from 1 to 1000; it is '" + std::string(value) + "'";
      out->selection.limit = limit;
    } else if (arg == "--parked" && !has_value) {
      out->selection.parked_only = true;
    } else if (arg.starts_with("-") && arg != "-") {
      return what + " has no option '" + std::string(args[i]) + "'; it knows " + options;
    } else {
      files.push_back(arg);
    }
  }
  if (files.size() != 1)
    return what + " takes exactly one FILE, e.g. stowage journal " + out->action + " pipeline.toml";
  out->file = std::string(files[0]);
  if (drop && out->selection.stage.empty() && !out->selection.id)
    return "'journal drop' needs --stage or --id: dropping every entry of every stage is not done by "
           "accident";
  return "";
}

// A number of seconds as "12.3s".
std::string Seconds(double seconds) {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(1);
  out << seconds << "s";
  return out.str();
}

int Journal(const JournalArgs& args) {
  namespace journal = stowage::journal;
  auto loaded = LoadOrReport(args.file);
  if (!loaded) return 1;
  if (loaded->databases.empty()) {
    std::cerr << args.file
              << ": the pipeline has no [[database]], so there is no journal: what best_effort stages "
              << "fail to store is journaled in a [[database]] only; nothing to " << args.action << "\n";
    return 1;
  }
  // The journal's own log lines (its table created on first use) would mix
  // with the listing on stdout: warnings and errors only.
  stowage::logging::SetLevel(loaded->log.level == "error" ? "error" : "warn");
  constexpr auto kDatabaseTimeout = std::chrono::seconds(10);

  int failed = 0;
  std::vector<std::pair<std::string, journal::Entry>> entries;  // database, entry
  std::map<std::string, journal::Backlog> backlogs;
  std::uint64_t total = 0;
  for (const auto& settings : loaded->databases) {
    const std::string& name = settings.name;
    auto fail = [&](const std::string& doing, const std::string& reason) {
      ++failed;
      std::cerr << "database '" << name << "': " << doing << " failed: " << reason
                << "; once that is fixed, run the command again\n";
    };
    try {
      auto database = std::make_shared<stowage::database::PostgresDatabase>(
          settings, stowage::logging::MakeStageLogger("Database " + name));
      journal::JournalStore store(database, stowage::logging::MakeStageLogger("Journal " + name));
      if (args.action == "list") {
        std::vector<journal::Entry> listed;
        stowage::Status s = store.List(args.selection, stowage::Deadline::After(kDatabaseTimeout), &listed);
        if (!s.ok()) {
          fail("listing the journal", s.ToString());
          continue;
        }
        for (auto& entry : listed) entries.emplace_back(name, std::move(entry));
        std::vector<journal::Backlog> counted;
        s = store.Backlogs(stowage::Deadline::After(kDatabaseTimeout), &counted);
        if (!s.ok()) {
          fail("counting the journal's entries", s.ToString());
          continue;
        }
        for (const auto& backlog : counted) {
          if (!args.selection.stage.empty() && backlog.stage != args.selection.stage) continue;
          journal::Backlog& sum = backlogs[backlog.stage];
          sum.stage = backlog.stage;
          sum.pending += backlog.pending;
          sum.parked += backlog.parked;
          sum.oldest_pending_age_s = std::max(sum.oldest_pending_age_s, backlog.oldest_pending_age_s);
        }
      } else {
        std::uint64_t count = 0;
        const stowage::Deadline deadline = stowage::Deadline::After(kDatabaseTimeout);
        const bool drop = args.action == "drop";
        stowage::Status s = drop ? store.Drop(args.selection, deadline, &count)
                                 : store.Requeue(args.selection, deadline, &count);
        total += count;
        if (!s.ok()) fail(drop ? "dropping journal entries" : "requeueing journal entries", s.ToString());
      }
    } catch (const std::exception& e) {
      fail("opening the journal", e.what());
    }
  }

  if (args.action == "list") {
    std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
      return a.second.created_at != b.second.created_at ? a.second.created_at < b.second.created_at
                                                        : a.second.id < b.second.id;
    });
    if (entries.size() > args.selection.limit) entries.resize(args.selection.limit);
    const bool several = loaded->databases.size() > 1;
    for (const auto& [database, e] : entries) {
      std::cout << e.id << "  " << e.stage << "  " << e.guest_id << "  created=" << e.created_at
                << "  attempts=" << e.attempts << "  " << (e.parked ? "parked" : "pending")
                << "  reason: " << e.reason << "  last error: " << (e.last_error.empty() ? "-" : e.last_error)
                << (several ? "  database=" + database : "") << "\n";
    }
    if (entries.empty())
      std::cout << "no journal entries" << (failed ? " in the databases that answered" : "") << "\n";
    for (const auto& [stage, backlog] : backlogs) {
      std::cout << "stage " << stage << ": pending=" << backlog.pending << "  parked=" << backlog.parked;
      if (backlog.pending > 0)
        std::cout << "  oldest pending " << Seconds(backlog.oldest_pending_age_s) << " old";
      std::cout << "\n";
    }
  } else {
    std::cout << (args.action == "drop" ? "dropped " : "requeued ") << total << " entries\n";
  }
  return failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.empty()) return Usage("no command given");
  std::string_view command = args[0];
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << kUsage;
    return 0;
  }
  if (command == "version" || command == "--version") {
    if (args.size() != 1) return Usage("'version' takes no arguments");
    std::cout << stowage::server::VersionText("stowage");
    return 0;
  }
  if (command == "validate") {
    bool check_environment = true;
    std::vector<std::string_view> files;
    for (std::size_t i = 1; i < args.size(); ++i) {
      if (args[i] == "--no-environment") {
        check_environment = false;
      } else if (args[i].starts_with("-") && args[i] != "-") {
        return Usage("'validate' has no option '" + std::string(args[i]) + "'; it knows --no-environment");
      } else {
        files.push_back(args[i]);
      }
    }
    if (files.size() != 1)
      return Usage("'validate' takes exactly one FILE, e.g. stowage validate pipeline.toml");
    return Validate(std::string(files[0]), check_environment);
  }
  if (command == "graph") {
    if (args.size() != 2) return Usage("'graph' takes exactly one FILE, e.g. stowage graph pipeline.toml");
    return Graph(std::string(args[1]));
  }
  if (command == "journal") {
    JournalArgs journal;
    if (std::string error = ParseJournalArgs({args.begin() + 1, args.end()}, &journal); !error.empty())
      return Usage(error);
    return Journal(journal);
  }
  if (command == "migrate") {
    if (args.size() != 2)
      return Usage("'migrate' takes exactly one FILE, e.g. stowage migrate pipeline.toml");
    return Migrate(std::string(args[1]));
  }
  return Usage("unknown command '" + std::string(command) + "'");
}
