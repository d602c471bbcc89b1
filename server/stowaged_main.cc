// stowaged: the stowage REST server. Loads pipeline.toml, builds the pipeline
// of stages it declares, and serves the guest chat API until SIGTERM/SIGINT.
//
// Exit codes: 0 after a clean shutdown; 1 when the server could not listen or
// requests were still running when the shutdown grace period ran out; 2 for
// a usage error or an invalid configuration (nothing was served).
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>

#include "api/chat_service.h"
#include "api/guest_chat_api.h"
#include "config/pipeline_config.h"
#include "engine/pipeline.h"
#include "http/http_server.h"
#include "logging/logging.h"

namespace {

constexpr auto kShutdownGrace = std::chrono::seconds(10);

constexpr const char* kUsage = R"(Usage: stowaged [--config FILE]

Serves the stowage guest chat REST API with the pipeline of stages declared
in FILE (default: pipeline.toml).

Options:
  --config FILE   the pipeline configuration to load
  --help          show this help and exit
  --version       show the version and exit

Signals: SIGTERM or SIGINT stops accepting connections, lets requests in
flight finish (at most 10 s), closes idle connections and exits.

Exit codes:
  0  clean shutdown
  1  could not listen, or requests were still running after the grace period
  2  usage error or invalid configuration (every error is printed to stderr)
)";

struct Args {
  std::string config = "pipeline.toml";
  bool help = false;
  bool version = false;
};

bool ParseArgs(int argc, char** argv, Args* args, std::string* error) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      args->help = true;
    } else if (arg == "--version") {
      args->version = true;
    } else if (arg == "--config") {
      if (i + 1 >= argc) {
        *error = "--config needs a file name, e.g. --config /etc/stowage/pipeline.toml";
        return false;
      }
      args->config = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      args->config = std::string(arg.substr(9));
    } else {
      *error = "unknown argument '" + std::string(arg) + "'; see stowaged --help";
      return false;
    }
  }
  return true;
}

void LogStages(const stowage::engine::Pipeline& pipeline) {
  for (const auto& stage : pipeline.stages()) {
    const auto& settings = stage->settings;
    std::string plugin = stage->plugin ? stage->plugin->path().string() : settings.plugin;
    std::string version = stage->plugin ? std::string(" v") + stage->plugin->info().version : "";
    spdlog::info("stage '{}': plugin={}{} policy={} {} timeout={}ms{}", settings.name, plugin, version,
                 stowage::config::PolicyName(settings.policy), settings.enabled ? "enabled" : "disabled",
                 settings.timeout.count(), stage->target.empty() ? "" : " target=" + stage->target);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  std::string usage_error;
  if (!ParseArgs(argc, argv, &args, &usage_error)) {
    std::cerr << "stowaged: " << usage_error << "\n";
    return 2;
  }
  if (args.help) {
    std::cout << kUsage;
    return 0;
  }
  if (args.version) {
    std::cout << "stowaged " << STOWAGE_VERSION << "\n";
    return 0;
  }

  // A peer that closed its socket (an HTTP client, Redis, PostgreSQL) must
  // fail that one write, not kill the server.
  std::signal(SIGPIPE, SIG_IGN);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ [%l] %v", spdlog::pattern_time_type::utc);
  spdlog::flush_on(spdlog::level::trace);

  auto loaded = stowage::config::LoadPipelineConfig(args.config);
  if (!loaded.errors.empty() || !loaded.config) {
    for (const auto& error : loaded.errors) std::cerr << error.ToString() << "\n";
    if (loaded.errors.empty()) std::cerr << args.config << ": the configuration could not be loaded\n";
    return 2;
  }
  const stowage::config::PipelineConfig& config = *loaded.config;
  if (!stowage::logging::SetLevel(config.log.level)) {
    std::cerr << args.config << ": log.level '" << config.log.level
              << "' is not a level; use trace, debug, info, warn or error\n";
    return 2;
  }
  std::string host;
  std::uint16_t port = 0;
  std::string listen_error;
  if (!stowage::http::ParseListenAddress(config.server.listen, &host, &port, &listen_error)) {
    std::cerr << args.config << ": server.listen: " << listen_error << "\n";
    return 2;
  }

  spdlog::info("stowaged {} starting with {}", STOWAGE_VERSION, args.config);
  auto built = stowage::engine::Pipeline::Build(config);
  for (const auto& warning : built.warnings) spdlog::warn("{}", warning);
  if (!built.errors.empty() || !built.pipeline) {
    for (const auto& error : built.errors) std::cerr << error << "\n";
    if (built.errors.empty()) std::cerr << args.config << ": the pipeline could not be built\n";
    return 2;
  }
  LogStages(*built.pipeline);

  stowage::api::PipelineChatService service(*built.pipeline);
  stowage::api::GuestChatApi api(service, {config.server.max_content_bytes, nullptr});

  stowage::http::ServerOptions options;
  options.host = host;
  options.port = port;
  options.io_threads = config.server.io_threads;
  options.workers = config.server.workers;
  options.body_limit = config.server.body_limit;

  // Installed before listening, so a signal sent once the port is open is never lost.
  boost::asio::io_context signals_context;
  boost::asio::signal_set signals(signals_context, SIGTERM, SIGINT);
  int received = 0;
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (!ec) received = signal;
  });

  std::size_t unfinished = 0;
  {
    stowage::http::HttpServer server(options, api);
    std::string error;
    if (!server.Listen(&error)) {
      spdlog::error("{}", error);
      return 1;
    }
    server.Start();
    auto endpoint = server.local_endpoint();
    spdlog::info("listening on http://{}:{} (io_threads={} workers={} body_limit={} max_content_bytes={})",
                 endpoint.address().to_string(), endpoint.port(), options.io_threads, options.workers,
                 options.body_limit, config.server.max_content_bytes);

    signals_context.run();
    spdlog::info("received {}; shutting down (waiting at most {} s for requests in flight)",
                 received == SIGTERM ? "SIGTERM" : "SIGINT", kShutdownGrace.count());
    unfinished = server.Shutdown(kShutdownGrace);
    if (unfinished > 0) {
      spdlog::error("exiting with {} request(s) unanswered", unfinished);
      spdlog::shutdown();
      std::_Exit(1);
    }
  }
  built.pipeline.reset();
  spdlog::info("stowaged stopped");
  return 0;
}
