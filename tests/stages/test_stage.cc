// test_stage: a real plugin for testing the engine, loader and server. It
// keeps messages in memory and can be told, per operation, to fail, hang or
// throw, so every failure path of the host can be driven through the real
// loader.
//
// Config:
//   target     "memory"  the target it names in stored_in / deleted_from
//   write      "ok"      ok | fail | hang | throw | reject | skip (answers ok, stores nothing:
//                        a cache that lost its entry)
//   read       "ok"      ok | fail | hang | throw | miss
//   range      "ignore"  ignore | honour | wrong: what read() does with a page it is asked for
//                        (SDK 1.5, ctx.range): ignore it and return everything; return just the
//                        page and the total; or set the total but return everything (a broken
//                        stage). Every read with a range journals "read <guest> page".
//   erase      "ok"      ok | fail | throw
//   hang_ms    5000      how long "hang" sleeps
//   set_attribute ""     "key=value" set on every successful write
//   write_sql  ""        a statement run on the stage's database in write(), before the outcome
//                        above is applied; $1 is the guest id, $2 the content
//   erase_sql  ""        a statement run in erase(); $1 is the guest id; held = rows affected
//   tx_sql     ""        a statement run without parameters in write(), after write_sql: for the
//                        host's guard of its transaction ("COMMIT", "SAVEPOINT x", ...)
//   sql_errors "return"  return | ignore: what write() and erase() do with a statement that
//                        failed or was refused (ignore: go on and answer ok, a careless stage)
//   journal    ""        a file each call appends a line to ("write <guest> <content>",
//                        "compensate <guest> <content>", ...), so tests see call order
//                        across stages and processes
//   prepare    "ok"      ok | fail: prepare() and prepare_erase() of the after-commit variant
//   fail_while ""        a file: write() fails while it exists (a target that is down, then back);
//                        a replayed write journals "write <guest> <content> replay"
//   fail_message "told to fail"  the message of the status a "fail" answers (e.g. one naming a
//                        host and a database, to check that no answer shows it); a failing
//                        write logs it as a warning
//   health     "ok"      ok | fail (unavailable, with fail_message) | hang (sleeps hang_ms, then
//                        logs "health answered after hanging"): what health() answers; every
//                        call journals "health"
//   health_sql ""        a statement run without parameters on the stage's [[database]] (the
//                        one it was given at construction) at the end of health(), after a hang
//                        too; journals "health_sql ok" or "health_sql failed"; an error answers
//                        unhealthy. With hang: a health check the host stopped waiting for that
//                        still uses the stage's logger and database
//   unhealthy_while ""   a file: health() fails (as health = "fail") while it exists
//
// Built five times: test_stage; test_stage_inline, which declares
// kKeepsDeadlines; test_stage_after_commit, which declares kAfterCommit
// (a copy of the store: prepared before the COMMIT, written after it) and
// journals "prepare", "abandon rolled_back|unknown" and "prepare_erase"; and
// test_stage_code_v1 and _v2, two builds of one plugin whose code differs
// (target() answers "<target>-v1" or "<target>-v2"), for rebuilding a plugin
// in place.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "stowage/chat/attributes.h"
#include "stowage/sdk.h"

namespace {

using stowage::ConfigSchema;
using stowage::ConfigType;
using stowage::Status;

class TestStage final : public stowage::Stage {
 public:
#ifdef STOWAGE_TEST_STAGE_KEEPS_DEADLINES
  // A false promise when told to hang: tests use it to see the host trust it.
  static constexpr bool kKeepsDeadlines = true;
#endif
#ifdef STOWAGE_TEST_STAGE_AFTER_COMMIT
  static constexpr bool kAfterCommit = true;
#endif
  static ConfigSchema config_schema() {
    return ConfigSchema()
        .optional("target", std::string("memory"), "target named in stored_in and deleted_from")
        .optional("write", std::string("ok"), "ok | fail | hang | throw | reject | skip")
        .optional("read", std::string("ok"), "ok | fail | hang | throw | miss")
        .optional("range", std::string("ignore"), "ignore | honour | wrong: a read's page (ctx.range)")
        .optional("erase", std::string("ok"), "ok | fail | throw")
        .optional("construct", std::string("ok"), "ok | throw")
        .optional("hang_ms", std::int64_t{5000}, "how long a hang lasts, in milliseconds")
        .optional("set_attribute", std::string(""), "key=value set on every successful write")
        .optional("journal", std::string(""), "file every call appends a line to")
        .optional("write_sql", std::string(""), "statement run in write(): $1 guest id, $2 content")
        .optional("erase_sql", std::string(""), "statement run in erase(): $1 guest id")
        .optional("tx_sql", std::string(""), "statement run without parameters in write(), after write_sql")
        .optional("sql_errors", std::string("return"), "return | ignore: a failed or refused statement")
        .optional("prepare", std::string("ok"), "ok | fail: prepare() and prepare_erase()")
        .optional("fail_while", std::string(""), "write() fails while this file exists")
        .optional("fail_message", std::string("told to fail"), "the message of a \"fail\" status")
        .optional("health", std::string("ok"), "ok | fail | hang: what health() answers")
        .optional("unhealthy_while", std::string(""), "health() fails while this file exists")
        .optional("health_sql", std::string(""), "statement run on the stage's database at the end of health()");
  }

  TestStage(const stowage::StageConfig& config, stowage::StageEnvironment& env)
      : target_(config.string("target")),
        write_(config.string("write")),
        read_(config.string("read")),
        range_(config.string("range")),
        erase_(config.string("erase")),
        hang_(std::chrono::milliseconds(config.integer("hang_ms"))),
        set_attribute_(config.string("set_attribute")),
        journal_(config.string("journal")),
        write_sql_(config.string("write_sql")),
        erase_sql_(config.string("erase_sql")),
        tx_sql_(config.string("tx_sql")),
        ignore_sql_errors_(config.string("sql_errors") == "ignore"),
        prepare_(config.string("prepare")),
        fail_while_(config.string("fail_while")),
        fail_message_(config.string("fail_message")),
        health_(config.string("health")),
        unhealthy_while_(config.string("unhealthy_while")),
        health_sql_(config.string("health_sql")),
        log_(env.log),
        database_(env.database) {
    if (config.string("construct") == "throw") throw std::runtime_error("told to throw in the constructor");
  }

#ifdef STOWAGE_TEST_STAGE_CODE
  std::string target() const override { return target_ + "-" STOWAGE_TEST_STAGE_CODE; }
#else
  std::string target() const override { return target_; }
#endif

  Status admit(stowage::WriteContext& ctx) override {
    if (write_ == "reject") return Status::Rejected("told to reject guest " + ctx.guest_id);
    return Status::Ok();
  }

  Status write(stowage::WriteContext& ctx) override {
    if (!write_sql_.empty()) {
      if (ctx.sql == nullptr) return Status::Internal("write_sql is set but the stage has no database");
      Status ran = ctx.sql->execute(write_sql_, {ctx.guest_id, ctx.message.content});
      if (!ran.ok() && !ignore_sql_errors_) return ran;
    }
    if (!tx_sql_.empty()) {
      if (ctx.sql == nullptr) return Status::Internal("tx_sql is set but the stage has no database");
      Status ran = ctx.sql->execute(tx_sql_, {});
      if (!ran.ok() && !ignore_sql_errors_) return ran;
    }
    if (write_ == "fail") {
      log_.warn("write for guest " + ctx.guest_id + " failed: " + fail_message_);
      return Status::Unavailable(fail_message_);
    }
    if (!fail_while_.empty() && std::filesystem::exists(fail_while_))
      return Status::Unavailable("told to fail while " + fail_while_ + " exists");
    if (write_ == "throw") throw std::runtime_error("told to throw");
    if (write_ == "hang") std::this_thread::sleep_for(hang_);
    if (write_ == "skip") return Status::Ok();
    {
      std::lock_guard lock(mu_);
      messages_[ctx.guest_id].push_back(ctx.message);
    }
    if (auto eq = set_attribute_.find('='); eq != std::string::npos)
      ctx.attributes.set(set_attribute_.substr(0, eq), set_attribute_.substr(eq + 1));
    Journal("write " + ctx.guest_id + " " + ctx.message.content + (ctx.replay ? " replay" : ""));
    log_.info("stored message for guest " + ctx.guest_id);
    return Status::Ok();
  }

  Status compensate(stowage::WriteContext& ctx) override {
    std::lock_guard lock(mu_);
    auto& list = messages_[ctx.guest_id];
    for (auto it = list.rbegin(); it != list.rend(); ++it) {
      if (*it == ctx.message) {
        list.erase(std::next(it).base());
        break;
      }
    }
    Journal("compensate " + ctx.guest_id + " " + ctx.message.content);
    return Status::Ok();
  }

  Status prepare(stowage::WriteContext& ctx) override {
    Journal("prepare " + ctx.guest_id + " " + ctx.message.content +
            " sequence=" + ctx.attributes.get(stowage::chat::kSequence).value_or("none"));
    if (prepare_ == "fail") return Status::Unavailable("told to fail");
    return Status::Ok();
  }

  Status abandon(stowage::WriteContext& ctx, stowage::Uncommitted why) override {
    Journal("abandon " + std::string(why == stowage::Uncommitted::kRolledBack ? "rolled_back" : "unknown") + " " +
            ctx.guest_id + " " + ctx.message.content);
    return Status::Ok();
  }

  Status prepare_erase(stowage::GuestContext& ctx) override {
    Journal("prepare_erase " + ctx.guest_id);
    if (prepare_ == "fail") return Status::Unavailable("told to fail");
    return Status::Ok();
  }

  stowage::ReadResult read(stowage::GuestContext& ctx) override {
    if (read_ == "fail") return {Status::Unavailable(fail_message_), false, {}};
    if (read_ == "throw") throw std::runtime_error("told to throw");
    if (read_ == "hang") std::this_thread::sleep_for(hang_);
    if (ctx.range != nullptr) Journal("read " + ctx.guest_id + " page");
    if (read_ == "miss") return {};
    std::lock_guard lock(mu_);
    auto it = messages_.find(ctx.guest_id);
    if (it == messages_.end() || it->second.empty()) return {};
    const std::vector<stowage::Message>& all = it->second;
    if (ctx.range == nullptr || range_ == "ignore") return {Status::Ok(), true, all};
    ctx.range->total = all.size();
    if (range_ == "wrong") return {Status::Ok(), true, all};
    const auto first = static_cast<std::ptrdiff_t>(ctx.range->first(all.size()));
    const auto end = static_cast<std::ptrdiff_t>(ctx.range->end(all.size()));
    return {Status::Ok(), true, std::vector<stowage::Message>(all.begin() + first, all.begin() + end)};
  }

  Status refill(stowage::GuestContext& ctx, const std::vector<stowage::Message>& messages) override {
    std::lock_guard lock(mu_);
    messages_[ctx.guest_id] = messages;
    Journal("refill " + ctx.guest_id + " " + std::to_string(messages.size()));
    return Status::Ok();
  }

  Status health(stowage::Deadline) override {
    Journal("health");
    if (health_ == "fail") return Status::Unavailable(fail_message_);
    if (!unhealthy_while_.empty() && std::filesystem::exists(unhealthy_while_))
      return Status::Unavailable(fail_message_);
    if (health_ == "hang") {
      std::this_thread::sleep_for(hang_);
      log_.info("health answered after hanging " + std::to_string(hang_.count()) + " ms");
    }
    if (!health_sql_.empty()) {
      if (database_ == nullptr) return Status::Internal("health_sql is set but the stage has no database");
      Status ran = database_->with_session(stowage::Deadline::After(std::chrono::seconds(5)),
                                           [&](stowage::SqlSession& session) {
                                             return session.execute(health_sql_, {});
                                           });
      Journal(ran.ok() ? "health_sql ok" : "health_sql failed");
      if (!ran.ok()) return ran;
    }
    return Status::Ok();
  }

  stowage::EraseResult erase(stowage::GuestContext& ctx) override {
    bool sql_held = false;
    if (!erase_sql_.empty()) {
      if (ctx.sql == nullptr) return {Status::Internal("erase_sql is set but the stage has no database"), false};
      stowage::SqlResult result;
      Status ran = ctx.sql->execute(erase_sql_, {ctx.guest_id}, &result);
      if (!ran.ok() && !ignore_sql_errors_) return {ran, false};
      sql_held = result.affected > 0;
    }
    if (erase_ == "fail") return {Status::Unavailable(fail_message_), false};
    if (erase_ == "throw") throw std::runtime_error("told to throw");
    std::lock_guard lock(mu_);
    bool held = messages_.erase(ctx.guest_id) > 0 || sql_held;
    Journal("erase " + ctx.guest_id);
    return {Status::Ok(), held};
  }

 private:
  void Journal(const std::string& line) {
    if (journal_.empty()) return;
    std::lock_guard lock(journal_mu_);
    std::ofstream(journal_, std::ios::app) << target_ << " " << line << "\n";
  }

  const std::string target_, write_, read_, range_, erase_;
  const std::chrono::milliseconds hang_;
  const std::string set_attribute_, journal_, write_sql_, erase_sql_, tx_sql_;
  const bool ignore_sql_errors_;
  const std::string prepare_, fail_while_, fail_message_, health_, unhealthy_while_, health_sql_;
  stowage::Logger& log_;
  stowage::Database* const database_;  // null without a [[database]]
  std::mutex mu_, journal_mu_;
  std::map<std::string, std::vector<stowage::Message>> messages_;
};

}  // namespace

#if defined(STOWAGE_TEST_STAGE_KEEPS_DEADLINES)
STOWAGE_STAGE(TestStage, "test_stage_inline", "TestStage", "1.0.0")
#elif defined(STOWAGE_TEST_STAGE_AFTER_COMMIT)
STOWAGE_STAGE(TestStage, "test_stage_after_commit", "TestStage", "1.0.0")
#else
STOWAGE_STAGE(TestStage, "test_stage", "TestStage", "1.0.0")
#endif
