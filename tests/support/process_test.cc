#include "support/process.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

namespace stowage::testing {
namespace {

using std::chrono::milliseconds;

TEST(ChildProcessTest, ReportsTheExitCode) {
  ChildProcess child({"sh", "-c", "exit 3"});
  ASSERT_TRUE(child.ok()) << child.error();
  EXPECT_EQ(child.Wait(milliseconds(10000)), 3);
  // Once exited, the same code every time.
  EXPECT_EQ(child.Wait(milliseconds(0)), 3);
}

TEST(ChildProcessTest, CapturesStdoutAndStderrInOneFile) {
  ChildProcess child({"sh", "-c", "echo to-stdout; echo to-stderr >&2"});
  ASSERT_EQ(child.Wait(milliseconds(10000)), 0);
  std::string output = child.ReadOutput();
  EXPECT_NE(output.find("to-stdout\n"), std::string::npos) << output;
  EXPECT_NE(output.find("to-stderr\n"), std::string::npos) << output;
}

TEST(ChildProcessTest, WritesToTheGivenOutputFileAndKeepsIt) {
  auto file = std::filesystem::temp_directory_path() / ("stowage-process-test-" + std::to_string(::getpid()));
  {
    ChildProcess child({"sh", "-c", "echo kept"}, file);
    ASSERT_EQ(child.Wait(milliseconds(10000)), 0);
    EXPECT_EQ(child.output_file(), file);
  }
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "kept");
  std::filesystem::remove(file);
}

TEST(ChildProcessTest, EnvironmentAdditionsOverrideInheritedVariables) {
  ::setenv("STOWAGE_PROCESS_TEST_INHERITED", "from-test", 1);
  ::setenv("STOWAGE_PROCESS_TEST_OVERRIDDEN", "from-test", 1);
  ChildProcess child(
      {"sh", "-c",
       "echo $STOWAGE_PROCESS_TEST_INHERITED $STOWAGE_PROCESS_TEST_OVERRIDDEN $STOWAGE_PROCESS_TEST_NEW"},
      {}, {{"STOWAGE_PROCESS_TEST_OVERRIDDEN", "overridden"}, {"STOWAGE_PROCESS_TEST_NEW", "added"}});
  ASSERT_EQ(child.Wait(milliseconds(10000)), 0);
  EXPECT_EQ(child.ReadOutput(), "from-test overridden added\n");
  ::unsetenv("STOWAGE_PROCESS_TEST_INHERITED");
  ::unsetenv("STOWAGE_PROCESS_TEST_OVERRIDDEN");
}

TEST(ChildProcessTest, StdinIsEmpty) {
  ChildProcess child({"cat"});
  ASSERT_EQ(child.Wait(milliseconds(10000)), 0);
  EXPECT_EQ(child.ReadOutput(), "");
}

TEST(ChildProcessTest, WaitTimesOutWhileRunningAndSignalEndsIt) {
  ChildProcess child({"sleep", "30"});
  ASSERT_TRUE(child.ok()) << child.error();
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(child.Wait(milliseconds(100)), std::nullopt);
  EXPECT_GE(std::chrono::steady_clock::now() - started, milliseconds(100));
  EXPECT_TRUE(child.Signal(SIGTERM));
  EXPECT_EQ(child.Wait(milliseconds(10000)), 128 + SIGTERM);
  EXPECT_FALSE(child.Signal(SIGTERM)) << "Signal() must refuse a child that has exited";
}

TEST(ChildProcessTest, KillEndsTheWholeProcessGroup) {
  // The shell prints its background child's pid, then waits for it.
  ChildProcess child({"sh", "-c", "sleep 30 & echo $!; wait"});
  pid_t grandchild = 0;
  for (int i = 0; i < 500 && grandchild == 0; ++i) {
    grandchild = std::atoi(child.ReadOutput().c_str());
    if (grandchild == 0) std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_GT(grandchild, 0) << "the shell did not print its child's pid";
  child.Kill();
  EXPECT_EQ(child.Wait(milliseconds(0)), 128 + SIGKILL);
  // The orphaned grandchild is gone, or a zombie awaiting its new parent.
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    std::ifstream stat("/proc/" + std::to_string(grandchild) + "/stat");
    std::string pid, name, state;
    gone = !(stat >> pid >> name >> state) || state == "Z";
    if (!gone) std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(gone) << "sleep (pid " << grandchild << ") survived Kill()";
}

TEST(ChildProcessTest, AMissingProgramIsReportedWithExitCode127) {
  ChildProcess by_path({"/nonexistent/stowage-no-such-program"});
  EXPECT_FALSE(by_path.ok());
  EXPECT_NE(by_path.error().find("/nonexistent/stowage-no-such-program"), std::string::npos)
      << by_path.error();
  EXPECT_EQ(by_path.Wait(milliseconds(0)), 127);
  EXPECT_NE(by_path.ReadOutput().find(by_path.error()), std::string::npos) << by_path.ReadOutput();

  ChildProcess by_name({"stowage-no-such-program"});
  EXPECT_FALSE(by_name.ok());
  EXPECT_NE(by_name.error().find("not found in PATH"), std::string::npos) << by_name.error();
  EXPECT_EQ(by_name.Wait(milliseconds(0)), 127);
}

TEST(FreePortTest, GivesABindablePortBelowTheEphemeralRange) {
  std::uint16_t port = FreePort();
  ASSERT_NE(port, 0);
  int low = 32768, high = 60999;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> low >> high;
  EXPECT_TRUE(port < low || port > high) << port << " is in the ephemeral range " << low << "-" << high;

  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ::close(fd);
}

TEST(WaitForTcpTest, SeesAListeningPortAndGivesUpOnAClosedOne) {
  std::uint16_t port = FreePort();
  ASSERT_NE(port, 0);
  auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(WaitForTcp(port, milliseconds(200)));
  auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_GE(waited, milliseconds(200));
  EXPECT_LT(waited, milliseconds(2000));

  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  EXPECT_TRUE(WaitForTcp(port, milliseconds(0)));
  ::close(fd);
}

}  // namespace
}  // namespace stowage::testing
