#include "stowaged_process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

namespace stowage::testing {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

namespace {

fs::path NewFolder(std::uint16_t port) {
  fs::path folder = fs::temp_directory_path() /
                    ("stowaged_test_" + std::to_string(::getpid()) + "_" + std::to_string(port));
  fs::remove_all(folder);
  fs::create_directories(folder);
  return folder;
}

}  // namespace

StowagedProcess::StowagedProcess(const fs::path& config, std::map<std::string, std::string> env)
    : port_(FreePort()), config_(config), folder_(NewFolder(port_)) {
  env["STOWAGE_LISTEN"] = "127.0.0.1:" + std::to_string(port_);
  process_ =
      std::make_unique<ChildProcess>(std::vector<std::string>{STOWAGED_PATH, "--config", config.string()},
                                     folder_ / "stowaged.log", std::move(env));
  running_ = WaitForTcp(port_, milliseconds(30000));
  if (!running_) ADD_FAILURE() << "stowaged did not start:\n" << log();
}

std::unique_ptr<StowagedProcess> StowagedProcess::FromText(const std::string& pipeline_toml,
                                                           std::map<std::string, std::string> env) {
  static int counter = 0;
  fs::path file = fs::temp_directory_path() /
                  ("stowaged_test_" + std::to_string(::getpid()) + "_" + std::to_string(++counter) + ".toml");
  std::ofstream(file) << pipeline_toml;
  return std::make_unique<StowagedProcess>(file, std::move(env));
}

StowagedProcess::~StowagedProcess() {
  process_->Signal(SIGTERM);
  process_->Wait(milliseconds(15000));
  process_.reset();
  fs::remove_all(folder_);
}

bool StowagedProcess::Signal(int sig) {
  return process_->Signal(sig);
}

std::string StowagedProcess::log() const {
  std::ifstream in(folder_ / "stowaged.log");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool StowagedProcess::WaitForLog(const std::function<bool(const std::string& log)>& holds,
                                 milliseconds timeout) const {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!holds(log())) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return true;
}

bool StowagedProcess::WaitForLog(std::string_view text, milliseconds timeout) const {
  return WaitForLog([text](const std::string& log) { return log.find(text) != std::string::npos; }, timeout);
}

}  // namespace stowage::testing
