// End-to-end tests of stowage, the command-line tool: the real binary with
// the real plugins, against the suite's Redis and PostgreSQL and against a
// private PostgreSQL that the test stops; `journal` against a scratch database.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "journal/journal_store.h"
#include "scratch_database.h"
#include "support/process.h"
#include "support/services.h"

namespace stowage::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

// A folder of its own for one test, removed afterwards.
class StowageCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    folder_ = fs::temp_directory_path() / ("stowage_cli_test_" + std::to_string(::getpid())) /
              (std::string(info->test_suite_name()) + "." + info->name());
    fs::remove_all(folder_);
    fs::create_directories(folder_);
  }
  void TearDown() override { fs::remove_all(folder_.parent_path()); }

  // Writes `body` after a [server] table that finds the bundled plugins.
  fs::path WritePipeline(const std::string& body) {
    fs::path file = folder_ / "pipeline.toml";
    std::ofstream(file) << "[server]\nplugin_path = [\"" << STOWAGE_PLUGIN_DIR << "\"]\n\n"
                        << "[log]\nlevel = \"warn\"\n\n"
                        << body;
    return file;
  }

  struct Run {
    int exit_code = -1;
    std::string output;  // stdout and stderr
  };
  // Runs stowage with `args` and waits for it (at most 60 s).
  Run Stowage(std::vector<std::string> args) {
    args.insert(args.begin(), STOWAGE_CLI_PATH);
    ChildProcess process(args, folder_ / "out.log");
    auto exit_code = process.Wait(milliseconds(60000));
    Run run;
    run.output = process.ReadOutput();
    run.exit_code = exit_code.value_or(-1);
    return run;
  }

  fs::path folder_;
};

// A cache on Redis, a store on PostgreSQL through [[database]] `main`, and a
// disabled best-effort test stage.
std::string ChatPipeline(const std::string& redis_url, const std::string& database_url) {
  return "[[database]]\nname = \"main\"\nurl = \"" + database_url +
         "\"\nconnect_timeout_ms = 1000\n\n"
         "[[stage]]\nname = \"cache\"\nplugin = \"redis\"\npolicy = \"required\"\n"
         "config = { url = \"" +
         redis_url +
         "\" }\n\n"
         "[[stage]]\nname = \"store\"\nplugin = \"postgres\"\npolicy = \"required\"\ndatabase = \"main\"\n\n"
         "[[stage]]\nname = \"extra\"\nplugin = \"" TEST_STAGE_PATH
         "\"\npolicy = \"best_effort\"\nenabled = false\n";
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// ---------------------------------------------------------------------------
// stowage validate

TEST_F(StowageCliTest, ValidateReachesEveryTargetOfAGoodFileAndExitsZero) {
  std::string redis = RequireEnv("STOWAGE_TEST_REDIS_URL");
  std::string database = RequireEnv("STOWAGE_TEST_DATABASE_URL");
  if (redis.empty() || database.empty()) return;
  fs::path file = WritePipeline(ChatPipeline(redis, database));
  Run run = Stowage({"validate", file.string()});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(Contains(run.output, "cache  plugin=redis.so")) << run.output;
  // The plugin file's content hash, as GET /v1/admin/pipeline shows it in full.
  EXPECT_TRUE(std::regex_search(run.output,
                                std::regex("cache  plugin=redis\\.so v\\S+ sha256=[0-9a-f]{12}  policy=")))
      << run.output;
  EXPECT_TRUE(Contains(run.output, "cache  target=redis  ok\n")) << run.output;
  EXPECT_TRUE(Contains(run.output, "store  target=postgresql  ok\n")) << run.output;
  EXPECT_TRUE(Contains(run.output, "extra  target=-  disabled, not checked\n")) << run.output;
}

TEST_F(StowageCliTest, ValidateWithAStoppedDatabaseExitsThreeNamingTheStageAndNoEnvironmentExitsZero) {
  std::string redis = RequireEnv("STOWAGE_TEST_REDIS_URL");
  if (redis.empty()) return;
  ServiceInstance postgres(Service::kPostgres);
  ASSERT_TRUE(postgres.running());
  ASSERT_TRUE(postgres.Stop());
  fs::path file = WritePipeline(ChatPipeline(redis, postgres.url()));

  Run file_only = Stowage({"validate", "--no-environment", file.string()});
  EXPECT_EQ(file_only.exit_code, 0) << file_only.output;
  EXPECT_FALSE(Contains(file_only.output, "target=")) << file_only.output;

  auto started = std::chrono::steady_clock::now();
  Run checked = Stowage({"validate", file.string()});
  EXPECT_EQ(checked.exit_code, 3) << checked.output;
  EXPECT_TRUE(Contains(checked.output, "cache  target=redis  ok\n")) << checked.output;
  EXPECT_TRUE(Contains(checked.output, "store  target=postgresql  unreachable: ")) << checked.output;
  EXPECT_TRUE(Contains(checked.output, "--no-environment")) << checked.output;
  // Each target gets 5 s at most, all at once.
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(20));

  // The option may come after the file too.
  Run after = Stowage({"validate", file.string(), "--no-environment"});
  EXPECT_EQ(after.exit_code, 0) << after.output;
}

TEST_F(StowageCliTest, ValidateExitsOneWhenAStageCannotBeCreated) {
  fs::path file = WritePipeline("[[stage]]\nname = \"broken\"\nplugin = \"" TEST_STAGE_PATH
                                "\"\nconfig = { construct = \"throw\" }\n");
  Run checked = Stowage({"validate", file.string()});
  EXPECT_EQ(checked.exit_code, 1) << checked.output;
  EXPECT_TRUE(Contains(checked.output, "broken")) << checked.output;
  EXPECT_TRUE(Contains(checked.output, "told to throw in the constructor")) << checked.output;

  Run file_only = Stowage({"validate", "--no-environment", file.string()});
  EXPECT_EQ(file_only.exit_code, 0) << file_only.output;
}

TEST_F(StowageCliTest, ValidateRefusesAnUnknownOption) {
  fs::path file = WritePipeline("");
  Run run = Stowage({"validate", "--no-enviroment", file.string()});
  EXPECT_EQ(run.exit_code, 2) << run.output;
  EXPECT_TRUE(Contains(run.output, "--no-enviroment")) << run.output;
}

TEST_F(StowageCliTest, HelpDocumentsTheExitCodes) {
  Run run = Stowage({"--help"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_TRUE(Contains(run.output, "--no-environment")) << run.output;
  EXPECT_TRUE(Contains(run.output, "stowage graph FILE")) << run.output;
  EXPECT_TRUE(Contains(run.output, "\n  3  validate:")) << run.output;
  EXPECT_TRUE(Contains(run.output, "stowage journal drop FILE (--stage S | --id N)")) << run.output;
}

// ---------------------------------------------------------------------------
// stowage graph

TEST_F(StowageCliTest, GraphPrintsStagesInOrderAndTheirDatabaseAsDot) {
  fs::path file =
      WritePipeline(ChatPipeline("redis://127.0.0.1:1/0", "postgresql://u:secret@127.0.0.1:1/db"));
  Run run = Stowage({"graph", file.string()});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const std::string& dot = run.output;

  EXPECT_EQ(dot.rfind("digraph pipeline {\n", 0), 0u) << dot;
  EXPECT_TRUE(dot.ends_with("}\n")) << dot;
  // One node per stage, in file order, styled by policy and state.
  auto cache =
      dot.find("\"stage:cache\" [label=\"cache\\nplugin: redis\\nrequired\\nenabled\", style=\"solid\"]");
  auto store =
      dot.find("\"stage:store\" [label=\"store\\nplugin: postgres\\nrequired\\nenabled\", style=\"solid\"]");
  auto extra = dot.find("\"stage:extra\" [label=\"extra\\nplugin: " TEST_STAGE_PATH
                        "\\nbest_effort\\ndisabled\", style=\"dashed,filled\", color=grey");
  ASSERT_NE(cache, std::string::npos) << dot;
  ASSERT_NE(store, std::string::npos) << dot;
  ASSERT_NE(extra, std::string::npos) << dot;
  EXPECT_LT(cache, store);
  EXPECT_LT(store, extra);
  // Edges in order, then the database and who joins it.
  auto first = dot.find("\"stage:cache\" -> \"stage:store\";\n");
  auto second = dot.find("\"stage:store\" -> \"stage:extra\";\n");
  ASSERT_NE(first, std::string::npos) << dot;
  ASSERT_NE(second, std::string::npos) << dot;
  EXPECT_LT(first, second);
  EXPECT_TRUE(Contains(dot, "\"database:main\" [shape=cylinder, label=\"database\\nmain\"];\n")) << dot;
  EXPECT_TRUE(Contains(dot, "\"stage:store\" -> \"database:main\" [style=dotted")) << dot;
  EXPECT_FALSE(Contains(dot, "\"stage:cache\" -> \"database:main\"")) << dot;
  EXPECT_FALSE(Contains(dot, "secret")) << dot;

  // Every statement line ends with ';' or opens/closes the graph, and quotes balance.
  std::istringstream lines(dot);
  for (std::string line; std::getline(lines, line);) {
    bool framing = line == "digraph pipeline {" || line == "}";
    EXPECT_TRUE(framing || line.ends_with(";")) << line;
    std::size_t quotes = 0;
    for (std::size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\\') {
        ++i;
        continue;
      }
      if (line[i] == '"') ++quotes;
    }
    EXPECT_EQ(quotes % 2, 0u) << line;
  }

  // Graphviz itself, where it is installed, must accept it.
  if (system("command -v dot >/dev/null 2>&1") == 0) {
    fs::path dot_file = folder_ / "pipeline.dot";
    std::ofstream(dot_file) << dot;
    ChildProcess graphviz({"dot", "-Tcanon", dot_file.string()}, folder_ / "dot.log");
    EXPECT_EQ(graphviz.Wait(milliseconds(30000)), 0) << graphviz.ReadOutput();
  }
}

TEST_F(StowageCliTest, GraphOfABadFileExitsOneWithTheErrors) {
  fs::path file = WritePipeline("[[stage]]\nname = \"cache\"\nplugin = \"redis\"\npolicy = \"sometimes\"\n");
  Run run = Stowage({"graph", file.string()});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_TRUE(Contains(run.output, file.string() + ":")) << run.output;
  EXPECT_TRUE(Contains(run.output, "policy")) << run.output;
  EXPECT_FALSE(Contains(run.output, "digraph")) << run.output;
}

// ---------------------------------------------------------------------------
// stowage journal

// A pipeline whose [[database]] `main` is at `database_url`, with one stage on it.
std::string JournalPipeline(const std::string& database_url) {
  return "[[database]]\nname = \"main\"\nurl = \"" + database_url +
         "\"\nconnect_timeout_ms = 1000\n\n"
         "[[stage]]\nname = \"store\"\nplugin = \"" TEST_STAGE_PATH
         "\"\npolicy = \"required\"\ndatabase = \"main\"\n";
}

// Journals a message of `guest` for `stage` as the engine does; parked
// (after 5 attempts) when `parked`. Returns its id.
std::string Journal(ScratchDatabase& scratch, const std::string& stage, const std::string& guest,
                    bool parked = false) {
  Message message{"user", "the guest's secret words", "2024-05-01T12:00:00.000000Z"};
  Attributes attributes;
  attributes.set("message_id", "41");
  auto statement =
      journal::JournalStore::Record(stage, guest, message, attributes, "unavailable: target down");
  std::string id = scratch.Scalar(statement.text + " RETURNING id", statement.params);
  if (parked) {
    scratch.Query(
        "UPDATE stowage_journal SET parked_at = now(), attempts = 5, last_error = 'still down',"
        " next_attempt_at = now() + interval '1 hour' WHERE id = $1::bigint",
        {id});
  }
  return id;
}

TEST_F(StowageCliTest, JournalListsReplaysAndDropsTheEntriesOfTheDatabase) {
  ScratchDatabase scratch("journal_cli");
  ASSERT_TRUE(scratch.ok());
  journal::JournalStore store(
      std::shared_ptr<database::PostgresDatabase>(std::shared_ptr<void>(), &scratch.database()),
      std::make_shared<CapturingLogger>());
  ASSERT_TRUE(store.EnsureSchema(Deadline::After(std::chrono::seconds(10))).ok());
  const std::string pending = Journal(scratch, "gone", "g-pending");
  const std::string parked = Journal(scratch, "gone", "g-parked", true);
  const std::string other = Journal(scratch, "retired", "g-other");
  fs::path file = WritePipeline(JournalPipeline(scratch.url()));

  Run list = Stowage({"journal", "list", file.string()});
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_TRUE(Contains(list.output, pending + "  gone  g-pending  created=")) << list.output;
  EXPECT_TRUE(
      Contains(list.output, "  attempts=0  pending  reason: unavailable: target down  last error: -\n"))
      << list.output;
  EXPECT_TRUE(Contains(list.output, parked + "  gone  g-parked  created=")) << list.output;
  EXPECT_TRUE(Contains(list.output,
                       "  attempts=5  parked  reason: unavailable: target down  last error: still down\n"))
      << list.output;
  EXPECT_TRUE(Contains(list.output, other + "  retired  g-other  ")) << list.output;
  EXPECT_LT(list.output.find(pending + "  gone"), list.output.find(parked + "  gone")) << list.output;
  EXPECT_LT(list.output.find(parked + "  gone"), list.output.find(other + "  retired")) << list.output;
  EXPECT_TRUE(Contains(list.output, "stage gone: pending=1  parked=1")) << list.output;
  EXPECT_TRUE(Contains(list.output, "stage retired: pending=1  parked=0")) << list.output;
  EXPECT_FALSE(Contains(list.output, "secret")) << list.output;

  Run only_parked = Stowage({"journal", "list", file.string(), "--parked", "--stage", "gone"});
  ASSERT_EQ(only_parked.exit_code, 0) << only_parked.output;
  EXPECT_TRUE(Contains(only_parked.output, parked + "  gone  g-parked")) << only_parked.output;
  EXPECT_FALSE(Contains(only_parked.output, "g-pending")) << only_parked.output;
  EXPECT_FALSE(Contains(only_parked.output, "retired")) << only_parked.output;
  Run one = Stowage({"journal", "list", file.string(), "--id", other});
  EXPECT_TRUE(Contains(one.output, other + "  retired")) << one.output;
  EXPECT_FALSE(Contains(one.output, "g-pending")) << one.output;
  Run limited = Stowage({"journal", "list", file.string(), "--limit=1"});
  EXPECT_TRUE(Contains(limited.output, "g-pending")) << limited.output;
  EXPECT_FALSE(Contains(limited.output, "g-parked  ")) << limited.output;

  Run replay = Stowage({"journal", "replay", file.string(), "--id", parked});
  ASSERT_EQ(replay.exit_code, 0) << replay.output;
  EXPECT_EQ(replay.output, "requeued 1 entries\n");
  EXPECT_EQ(
      scratch.Scalar("SELECT (parked_at IS NULL) || ':' || attempts || ':' || (next_attempt_at <= now())"
                     " FROM stowage_journal WHERE id = $1::bigint",
                     {parked}),
      "true:0:true");

  Journal(scratch, "gone", "g-parked-2", true);
  Run drop = Stowage({"journal", "drop", file.string(), "--stage", "gone", "--parked"});
  ASSERT_EQ(drop.exit_code, 0) << drop.output;
  EXPECT_EQ(drop.output, "dropped 1 entries\n");
  EXPECT_EQ(scratch.Scalar("SELECT string_agg(guest_id, ' ' ORDER BY id) FROM stowage_journal"),
            "g-pending g-parked g-other");
  Run drop_one = Stowage({"journal", "drop", file.string(), "--id", other});
  EXPECT_EQ(drop_one.output, "dropped 1 entries\n");
  EXPECT_EQ(scratch.Scalar("SELECT string_agg(guest_id, ' ' ORDER BY id) FROM stowage_journal"),
            "g-pending g-parked");

  // Dropping needs a stage or an id.
  Run everything = Stowage({"journal", "drop", file.string()});
  EXPECT_EQ(everything.exit_code, 2) << everything.output;
  EXPECT_TRUE(Contains(everything.output, "--stage or --id")) << everything.output;
  Run parked_only = Stowage({"journal", "drop", file.string(), "--parked"});
  EXPECT_EQ(parked_only.exit_code, 2) << parked_only.output;
  EXPECT_EQ(scratch.Scalar("SELECT count(*) FROM stowage_journal"), "2");
}

TEST_F(StowageCliTest, JournalUsageErrorsExitTwo) {
  fs::path file = WritePipeline(JournalPipeline("postgresql://stowage@127.0.0.1:1/stowage"));
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"journal"},
                                             {"journal", "show", file.string()},
                                             {"journal", "list"},
                                             {"journal", "list", file.string(), "--limit", "0"},
                                             {"journal", "list", file.string(), "--limit", "1001"},
                                             {"journal", "list", file.string(), "--id", "x"},
                                             {"journal", "list", file.string(), "--stage", "a$b"},
                                             {"journal", "list", file.string(), "--stage"},
                                             {"journal", "replay", file.string(), "--limit", "5"},
                                             {"journal", "list", file.string(), "--bogus"}}) {
    Run run = Stowage(args);
    EXPECT_EQ(run.exit_code, 2) << args.size() << " " << run.output;
    EXPECT_TRUE(Contains(run.output, "Usage:")) << run.output;
  }
}

TEST_F(StowageCliTest, JournalWithoutADatabaseOrWithOneDownExitsOne) {
  fs::path bare = WritePipeline("[[stage]]\nname = \"cache\"\nplugin = \"" TEST_STAGE_PATH "\"\n");
  Run none = Stowage({"journal", "list", bare.string()});
  EXPECT_EQ(none.exit_code, 1) << none.output;
  EXPECT_TRUE(Contains(none.output, "no [[database]], so there is no journal")) << none.output;

  fs::path down = WritePipeline(
      JournalPipeline("postgresql://stowage@127.0.0.1:" + std::to_string(FreePort()) + "/stowage"));
  for (const char* action : {"list", "replay"}) {
    Run run = Stowage({"journal", action, down.string()});
    EXPECT_EQ(run.exit_code, 1) << run.output;
    EXPECT_TRUE(Contains(run.output, "database 'main': ")) << run.output;
    EXPECT_TRUE(Contains(run.output, "cannot reach")) << run.output;
  }
}

}  // namespace
}  // namespace stowage::testing
