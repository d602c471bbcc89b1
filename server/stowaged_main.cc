// stowaged: the stowage REST server. Loads pipeline.toml, builds the pipeline
// of stages it declares, waits for its required stages to be healthy, and
// serves the guest chat API until SIGTERM/SIGINT; SIGHUP reloads the file.
// Under systemd (Type=notify) it reports when it is ready, reloading and
// stopping (systemd_notify.h).
//
// Exit codes: 0 after a clean shutdown; 1 when the server could not listen or
// requests were still running when the shutdown grace period ran out; 2 for
// a usage error, an invalid configuration, or a required stage still
// unhealthy after [server] startup_timeout_ms (nothing was served).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "api/admin_api.h"
#include "api/chat_service.h"
#include "api/guest_chat_api.h"
#include "api/server_handler.h"
#include "config/pipeline_config.h"
#include "engine/pipeline.h"
#include "engine/pipeline_holder.h"
#include "http/http_server.h"
#include "logging/logging.h"
#include "observability/metrics.h"
#include "systemd_notify.h"
#include "version_info.h"

namespace {

constexpr auto kShutdownGrace = std::chrono::seconds(10);

constexpr const char* kUsage = R"(Usage: stowaged [--config FILE]

Serves the stowage guest chat REST API with the pipeline of stages declared
in FILE (default: pipeline.toml).

Signals: SIGTERM or SIGINT stops accepting connections, lets requests in
flight finish (at most 10 s), closes idle connections and exits. SIGHUP
reloads FILE: unchanged stages are kept, the new pipeline is swapped in, and
a file that does not validate is refused (the running pipeline keeps serving).

Options:
  --config FILE   the pipeline configuration to load
  --help          show this help and exit
  --version       show the version, SDK version, git revision, Boost and
                  compiler, and exit

Exit codes:
  0  clean shutdown
  1  could not listen, or requests were still running after the grace period
  2  usage error, invalid configuration, or a required stage still unhealthy
     after [server] startup_timeout_ms (every error is printed to stderr)

Environment:
  STOWAGE_ADMIN_TOKEN       the admin routes' bearer token (the variable
                            [server] admin_token_env names); unset: no admin routes
  STOWAGE_PLUGIN_CACHE_DIR  where the private copies of the loaded plugins are
                            kept (else $XDG_RUNTIME_DIR, else $TMPDIR or /tmp)
  NOTIFY_SOCKET             set by systemd (Type=notify): stowaged says READY=1
                            once it listens and its required stages are healthy,
                            RELOADING=1 then READY=1 around a SIGHUP reload, and
                            STOPPING=1 when it shuts down
  REDIS_URL, DATABASE_URL   and any other variable FILE names as ${VAR} (the
                            default pipeline.toml names these two)
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
    std::string version = stage->plugin ? std::string(" v") + stage->plugin->info().version +
                                              " sha256=" + stage->plugin->sha256().substr(0, 12)
                                        : "";
    spdlog::info("stage '{}': plugin={}{} policy={} {} timeout={}ms{}", settings.name, plugin, version,
                 stowage::config::PolicyName(settings.policy), settings.enabled ? "enabled" : "disabled",
                 settings.timeout.count(), stage->target.empty() ? "" : " target=" + stage->target);
  }
}

// Asks the enabled stages' health() until every required one is healthy,
// retrying with backoff until `timeout`. Returns an empty string when ready,
// else why not, naming each stage still unhealthy. An unhealthy best_effort
// stage is logged and does not hold the start.
std::string WaitForRequiredStages(const stowage::engine::Pipeline& pipeline,
                                  std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const auto until = Clock::now() + timeout;
  auto backoff = std::chrono::milliseconds(100);
  bool first = true;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    auto health =
        pipeline.Health(std::clamp(left, std::chrono::milliseconds(100), std::chrono::milliseconds(2000)));
    std::string unhealthy;
    for (const auto& stage : health) {
      if (!stage.enabled || stage.status.ok()) continue;
      if (!stage.required) {
        if (first)
          spdlog::warn("stage '{}' (best_effort) is not healthy: {}; starting degraded, it is called anyway",
                       stage.name, stage.status.ToString());
        continue;
      }
      unhealthy += (unhealthy.empty() ? "" : "; ") + std::string("stage '") + stage.name +
                   "' (required): " + stage.status.ToString();
    }
    first = false;
    if (unhealthy.empty()) return "";
    const auto now = Clock::now();
    if (now >= until) {
      return "required stages still unhealthy after startup_timeout_ms = " + std::to_string(timeout.count()) +
             ": " + unhealthy + "; start their targets, or raise [server] startup_timeout_ms";
    }
    const auto wait = std::min(backoff, std::chrono::duration_cast<std::chrono::milliseconds>(until - now) +
                                            std::chrono::milliseconds(1));
    spdlog::warn("waiting for required stages ({}); retrying in {} ms", unhealthy, wait.count());
    std::this_thread::sleep_for(wait);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
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
    std::cout << stowage::server::VersionText("stowaged");
    return 0;
  }

  // A peer that closed its socket (an HTTP client, Redis, PostgreSQL) must
  // fail that one write, not kill the server.
  std::signal(SIGPIPE, SIG_IGN);
  stowage::logging::LogToStdout();
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ [%l] %v", spdlog::pattern_time_type::utc);
  // Warnings and errors reach the log at once; other lines (the access log
  // among them) within a second, so that a busy server does not pay a write
  // per line.
  spdlog::flush_on(spdlog::level::warn);
  spdlog::flush_every(std::chrono::seconds(1));

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

  spdlog::info("stowaged {} (revision {}) starting with {}", STOWAGE_VERSION, stowage::server::GitRevision(),
               args.config);
  // Under systemd (stowaged.service, Type=notify): what the start waits for,
  // READY=1 once serving, the reloads and the shutdown. A failure to tell it
  // is logged and changes nothing else.
  const stowage::server::SystemdNotifier notifier = stowage::server::SystemdNotifier::FromEnvironment();
  auto notified = [](const std::string& error) {
    if (!error.empty()) spdlog::warn("could not notify systemd: {}", error);
  };
  stowage::observability::Registry metrics;
  auto built = stowage::engine::Pipeline::Build(config, nullptr, &metrics);
  for (const auto& warning : built.warnings) spdlog::warn("{}", warning);
  if (!built.errors.empty() || !built.pipeline) {
    for (const auto& error : built.errors) std::cerr << error << "\n";
    if (built.errors.empty()) std::cerr << args.config << ": the pipeline could not be built\n";
    return 2;
  }
  LogStages(*built.pipeline);

  std::string admin_host;
  std::uint16_t admin_port = 0;
  if (!config.server.admin_listen.empty() &&
      !stowage::http::ParseListenAddress(config.server.admin_listen, &admin_host, &admin_port,
                                         &listen_error)) {
    std::cerr << args.config << ": server.admin_listen: " << listen_error << "\n";
    return 2;
  }

  // systemd's start timeout must not end the wait before startup_timeout_ms does.
  notified(notifier.Status("waiting for the required stages to be healthy (at most " +
                               std::to_string(config.server.startup_timeout.count()) + " ms)",
                           config.server.startup_timeout + std::chrono::seconds(30)));
  std::string not_ready = WaitForRequiredStages(*built.pipeline, config.server.startup_timeout);
  if (!not_ready.empty()) {
    spdlog::error("refusing to start: {}", not_ready);
    notified(notifier.Status("refusing to start: " + not_ready));
    std::cerr << args.config << ": " << not_ready << "\n";
    return 2;
  }

  stowage::engine::PipelineHolder holder(std::move(built.pipeline));
  const char* token = std::getenv(config.server.admin_token_env.c_str());
  stowage::api::AdminApi admin(holder, args.config, token ? token : "", metrics);
  if (admin.enabled())
    spdlog::info("admin routes on (token from ${})", config.server.admin_token_env);
  else
    spdlog::info("admin routes off: ${} is unset or empty", config.server.admin_token_env);

  stowage::api::PipelineChatService service(
      holder, {&metrics.counter("stowage_degraded_responses_total",
                                "Answers in which a stage failed or was skipped without failing them."),
               &metrics.counter("stowage_commit_outcome_unknown_total",
                                "POSTs whose COMMIT got no answer (503 outcome_unknown).")});
  stowage::api::GuestChatApi api(
      service, {.max_content_bytes = config.server.max_content_bytes,
                .max_history = config.server.max_history,
                .replayed = &metrics.counter("stowage_idempotent_replays_total",
                                             "POSTs answered with the answer recorded for their Idempotency-Key.")});
  const bool separate_admin = !config.server.admin_listen.empty();
  // One for both listeners: /readyz asks the stages at most once a second.
  stowage::api::Readiness readiness(holder);
  stowage::api::ServerHandler handler(
      separate_admin ? stowage::api::Listener::kPublic : stowage::api::Listener::kAll, api, admin, readiness,
      metrics);
  stowage::api::ServerHandler admin_handler(stowage::api::Listener::kAdminOnly, api, admin, readiness, metrics);

  stowage::http::ServerOptions options;
  options.host = host;
  options.port = port;
  options.io_threads = config.server.io_threads;
  options.workers = config.server.workers;
  options.body_limit = config.server.body_limit;
  options.max_queue = config.server.max_queue;
  options.queue_timeout = config.server.queue_timeout;
  stowage::http::ServerOptions admin_options = options;
  admin_options.host = admin_host;
  admin_options.port = admin_port;
  admin_options.io_threads = 1;
  admin_options.workers = 2;
  admin_options.max_connections = 64;
  admin_options.max_queue = 16;
  {
    // Descriptors kept beside the clients' connections: databases, Redis,
    // logs, plugins, journals, and both listeners' overflow connections.
    constexpr std::size_t kFilesKept = 512;
    std::string warning;
    options.max_connections = stowage::http::FitConnectionsToFileLimit(
        config.server.max_connections,
        kFilesKept + options.overflow_connections +
            (separate_admin ? admin_options.max_connections + admin_options.overflow_connections : 0),
        &warning);
    if (!warning.empty()) spdlog::warn("{}", warning);
  }

  // Installed before listening, so a signal sent once the port is open is never lost.
  boost::asio::io_context signals_context;
  boost::asio::signal_set signals(signals_context, SIGTERM, SIGINT, SIGHUP);
  int received = 0;
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signal) {
        if (ec) return;
        if (signal == SIGHUP) {
          spdlog::info("received SIGHUP; reloading {}", args.config);
          notified(notifier.Reloading("reloading " + args.config));
          const auto report = admin.Reload();
          notified(notifier.Ready(report.ok ? "serving pipeline generation " + std::to_string(report.generation) +
                                                  " (reloaded)"
                                            : "serving pipeline generation " + std::to_string(report.generation) +
                                                  " (the last reload was refused; see the log)"));
          signals.async_wait(on_signal);
          return;
        }
        received = signal;
      };
  signals.async_wait(on_signal);

  std::size_t unfinished = 0;
  {
    stowage::http::HttpServer server(options, handler);
    std::optional<stowage::http::HttpServer> admin_server;
    std::string error;
    if (!server.Listen(&error)) {
      spdlog::error("{}", error);
      return 1;
    }
    if (separate_admin) {
      admin_server.emplace(admin_options, admin_handler);
      if (!admin_server->Listen(&error)) {
        spdlog::error("server.admin_listen: {}", error);
        return 1;
      }
    }
    server.Start();
    auto endpoint = server.local_endpoint();
    spdlog::info(
        "listening on http://{}:{} (io_threads={} workers={} body_limit={} max_content_bytes={} "
        "max_connections={} max_queue={} queue_timeout_ms={})",
        endpoint.address().to_string(), endpoint.port(), options.io_threads, options.workers, options.body_limit,
        config.server.max_content_bytes, options.max_connections, options.max_queue,
        options.queue_timeout.count());
    if (admin_server) {
      admin_server->Start();
      auto admin_endpoint = admin_server->local_endpoint();
      spdlog::info("admin routes listening on http://{}:{}", admin_endpoint.address().to_string(),
                   admin_endpoint.port());
    }

    spdlog::default_logger()->flush();  // the startup lines, at once
    notified(notifier.Ready("serving pipeline generation 1 on http://" + endpoint.address().to_string() + ":" +
                            std::to_string(endpoint.port())));
    signals_context.run();
    notified(notifier.Stopping("shutting down (at most " + std::to_string(kShutdownGrace.count()) +
                               " s for requests in flight)"));
    spdlog::info("received {}; shutting down (waiting at most {} s for requests in flight)",
                 received == SIGTERM ? "SIGTERM" : "SIGINT", kShutdownGrace.count());
    if (admin_server) (void)admin_server->Shutdown(std::chrono::seconds(2));
    unfinished = server.Shutdown(kShutdownGrace);
    if (unfinished > 0) {
      spdlog::error("exiting with {} request(s) unanswered", unfinished);
      spdlog::shutdown();
      std::_Exit(1);
    }
  }
  spdlog::info("stowaged stopped");
  return 0;
}
