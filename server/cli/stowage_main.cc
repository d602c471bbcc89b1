// stowage: the operator's command-line tool.
//
//   stowage validate FILE   check a pipeline.toml and every stage plugin it names
//   stowage migrate FILE    prepare every enabled stage's storage (schemas) and check it
//   stowage version         the SDK version and the host's ABI
//
// `validate` loads each plugin and checks the stage's config table against
// the plugin's schema, but constructs no stage: it touches no storage target.
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/pipeline_config.h"
#include "engine/pipeline.h"
#include "loader/plugin_loader.h"
#include "logging/logging.h"
#include "stowage/version.h"

namespace {

constexpr const char* kUsage = R"(Usage:
  stowage validate FILE   check FILE (a pipeline.toml): its keys, each stage's plugin
                          (found, loadable, built for this host) and each stage's
                          config table against the plugin's schema. No stage is
                          created and no storage target is contacted. Prints one
                          line per stage.
  stowage migrate FILE    create every enabled stage of FILE, which creates or
                          migrates its storage (e.g. the PostgreSQL stage's tables,
                          versioned in stowage_schema_migrations), then checks each
                          stage's health. Safe to run while servers run, and twice.
                          Prints one line per stage.
  stowage version         print the stowage version, the SDK version and the host ABI
  stowage --help          print this help

Exit codes:
  0  success (validate: the file is valid; migrate: every stage is ready)
  1  validate: the file or a plugin has errors; each is printed to stderr with
     file:line:column and the key. migrate: the same, or a stage could not
     prepare or reach its storage (the stage and the reason are printed)
  2  usage error
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

int Validate(const std::string& file) {
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
                    result.plugin->info().version + "  policy=" + config::PolicyName(stage.policy) + "  " +
                    (stage.enabled ? "enabled" : "disabled") +
                    "  timeout=" + std::to_string(stage.timeout.count()) + "ms");
  }
  if (!errors.empty()) {
    for (const auto& error : errors) std::cerr << error << "\n";
    std::cerr << file << ": " << errors.size() << " error(s); fix them and run stowage validate again\n";
    return 1;
  }
  for (const auto& line : lines) std::cout << line << "\n";
  return 0;
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
    std::cout << "stowage " << STOWAGE_VERSION << "\n"
              << "SDK " << STOWAGE_SDK_VERSION_MAJOR << "." << STOWAGE_SDK_VERSION_MINOR << "\n"
              << "host " << stowage::loader::HostDescription() << "\n";
    return 0;
  }
  if (command == "validate") {
    if (args.size() != 2)
      return Usage("'validate' takes exactly one FILE, e.g. stowage validate pipeline.toml");
    return Validate(std::string(args[1]));
  }
  if (command == "migrate") {
    if (args.size() != 2) return Usage("'migrate' takes exactly one FILE, e.g. stowage migrate pipeline.toml");
    return Migrate(std::string(args[1]));
  }
  return Usage("unknown command '" + std::string(command) + "'");
}
