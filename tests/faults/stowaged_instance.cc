#include "stowaged_instance.h"

#include <signal.h>

#include <fstream>
#include <stdexcept>
#include <thread>

#include "http_client.h"

namespace stowage::faults {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

namespace {

std::string Tail(const std::string& text, std::size_t lines) {
  std::size_t start = text.size();
  for (std::size_t count = 0; start > 0 && count <= lines;) {
    if (text[--start] == '\n') ++count;
  }
  return text.substr(start == 0 ? 0 : start + 1);
}

}  // namespace

StowagedInstance::StowagedInstance(int index, fs::path binary, fs::path config, fs::path work_dir,
                                   std::map<std::string, std::string> env)
    : index_(index),
      port_(testing::FreePort()),
      binary_(std::move(binary)),
      config_(std::move(config)),
      work_dir_(std::move(work_dir)),
      env_(std::move(env)) {
  if (port_ == 0) throw std::runtime_error("found no free loopback port for " + name() + "; free some ports");
  env_["STOWAGE_LISTEN"] = "127.0.0.1:" + std::to_string(port_);
}

StowagedInstance::~StowagedInstance() {
  Stop();
}

void StowagedInstance::Start() {
  log_file_ = work_dir_ / ("stowaged-" + std::to_string(index_) + "." + std::to_string(++starts_) + ".log");
  process_ = std::make_unique<testing::ChildProcess>(
      std::vector<std::string>{binary_.string(), "--config", config_.string()}, log_file_, env_);
  if (!process_->ok()) throw std::runtime_error("cannot start " + name() + ": " + process_->error());
  std::ofstream(work_dir_ / ("stowaged-" + std::to_string(index_) + ".pid")) << process_->pid() << "\n";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!testing::WaitForTcp(port_, milliseconds(100))) {
    if (auto code = process_->Wait(milliseconds(0))) {
      throw std::runtime_error(name() + " exited with code " + std::to_string(*code) +
                               " at start; the end of " + log_file_.string() + ":\n" +
                               Tail(process_->ReadOutput(), 20));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      throw std::runtime_error(name() + " did not listen on 127.0.0.1:" + std::to_string(port_) +
                               " within 30 s; the end of " + log_file_.string() + ":\n" +
                               Tail(process_->ReadOutput(), 20));
    }
  }
}

void StowagedInstance::Kill() {
  if (process_) process_->Kill();
}

void StowagedInstance::Stop() {
  if (!process_) return;
  process_->Signal(SIGTERM);
  if (!process_->Wait(milliseconds(15000))) process_->Kill();
  process_.reset();
}

bool StowagedInstance::WaitReady(milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  testing::HttpClient client(port_);
  client.set_timeout(milliseconds(2000));
  while (true) {
    try {
      if (client.Send("GET", "/readyz", "", "").status == 200) return true;
    } catch (const std::exception&) {
      // not listening yet, or stalled: try again
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(100));
  }
}

}  // namespace stowage::faults
