#include "engine/pipeline_holder.h"

#include "logging/logging.h"

namespace stowage::engine {
namespace {

const config::StageSettings* Find(const std::vector<config::StageSettings>& stages, const std::string& name) {
  for (const auto& s : stages)
    if (s.name == name) return &s;
  return nullptr;
}

void Append(std::string& out, const char* label, const std::vector<std::string>& names) {
  if (names.empty()) return;
  if (out.back() != '(') out += "; ";
  out += label;
  out += ": ";
  for (std::size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
}

}  // namespace

std::string ReloadReport::Summary() const {
  if (!ok) {
    std::string out = "reload refused (generation " + std::to_string(generation) + " keeps serving):";
    for (const auto& e : errors) out += "\n  " + e;
    return out;
  }
  std::string out =
      "reload: generation " + std::to_string(generation) + " in " + std::to_string(took.count()) + " ms (";
  Append(out, "added", added);
  Append(out, "removed", removed);
  Append(out, "enabled", enabled);
  Append(out, "disabled", disabled);
  Append(out, "reconfigured", reconfigured);
  Append(out, "kept", kept);
  Append(out, "server keys that need a restart", needs_restart);
  std::vector<std::string> changes;
  for (const auto& change : plugin_changed) {
    changes.push_back(change.stage + " (" + change.plugin.filename().string() + " " +
                      change.sha256_before.substr(0, 12) + " -> " + change.sha256.substr(0, 12) + ")");
  }
  Append(out, "new plugin code", changes);
  out += ")";
  return out;
}

PipelineHolder::PipelineHolder(std::shared_ptr<Pipeline> initial) {
  initial->generation_ = 1;
  initial->StartReplay();
  current_.store(std::move(initial));
}

ReloadReport PipelineHolder::Reload(const std::filesystem::path& file, const config::Environment& env) {
  std::lock_guard lock(reload_mu_);
  const auto started = std::chrono::steady_clock::now();
  ReloadReport report;
  std::shared_ptr<Pipeline> running = current_.load();
  report.generation = generation_.load();

  auto loaded = config::LoadPipelineConfig(file, env);
  if (!loaded.errors.empty() || !loaded.config) {
    for (const auto& error : loaded.errors) report.errors.push_back(error.ToString());
    if (report.errors.empty())
      report.errors.push_back(file.string() + ": the configuration could not be loaded");
    return report;
  }
  config::PipelineConfig cfg = std::move(*loaded.config);
  report.needs_restart = config::KeysNeedingRestart(running->config().server, cfg.server);
  cfg.server = running->config().server;

  auto built = Pipeline::Build(cfg, running.get());
  report.warnings = std::move(built.warnings);
  if (!built.errors.empty() || !built.pipeline) {
    report.errors = std::move(built.errors);
    if (report.errors.empty()) report.errors.push_back(file.string() + ": the pipeline could not be built");
    return report;
  }

  const auto& before = running->config().stages;
  for (const auto& now : cfg.stages) {
    const config::StageSettings* was = Find(before, now.name);
    const StageInstance* old_instance = running->stage(now.name);
    const StageInstance* new_instance = built.pipeline->stage(now.name);
    if (!was) {
      report.added.push_back(now.name);
    } else if (was->enabled && !now.enabled) {
      report.disabled.push_back(now.name);
    } else if (!was->enabled && now.enabled) {
      report.enabled.push_back(now.name);
    } else if (!now.enabled) {
      // A disabled stage has no instance to keep: its settings tell.
      (config::SameSettings(*was, now) ? report.kept : report.reconfigured).push_back(now.name);
    } else if (old_instance == new_instance) {
      report.kept.push_back(now.name);
    } else {
      report.reconfigured.push_back(now.name);
      if (old_instance && new_instance && old_instance->plugin && new_instance->plugin &&
          old_instance->plugin->path() == new_instance->plugin->path() &&
          old_instance->plugin->sha256() != new_instance->plugin->sha256()) {
        report.plugin_changed.push_back(PluginChange{now.name, new_instance->plugin->path(),
                                                     old_instance->plugin->sha256(),
                                                     new_instance->plugin->sha256()});
      }
    }
  }
  for (const auto& was : before)
    if (!Find(cfg.stages, was.name)) report.removed.push_back(was.name);

  (void)logging::SetLevel(cfg.log.level);  // checked by the parser
  built.pipeline->generation_ = generation_.load() + 1;
  // One generation replays the journal at a time: the one in force, with
  // its stages (a stage switched off is no longer replayed).
  running->StopReplay();
  built.pipeline->StartReplay();
  current_.store(built.pipeline);
  generation_.store(built.pipeline->generation_);
  report.generation = built.pipeline->generation_;
  report.ok = true;
  report.took =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  return report;
}

}  // namespace stowage::engine
