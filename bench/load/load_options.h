// The command line of stowage-load, parsed and checked.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace stowage::bench {

// What one run of stowage-load does. Every value has been checked against
// the limits below by ParseLoadOptions.
struct LoadOptions {
  std::string url = "http://127.0.0.1:8000";
  std::string host = "127.0.0.1";  // from url; always a loopback address
  std::uint16_t port = 8000;       // from url
  int connections = 32;            // worker threads, one keep-alive connection each
  double duration_s = 10;          // how long new requests are started
  int guests = 1000;               // guest ids bench-0 .. bench-<guests-1>
  int post_weight = 1;             // relative share of POSTs
  int get_weight = 1;              // relative share of GETs
  int content_bytes = 200;         // length of each message's content
  std::int64_t max_requests = 0;   // stop after this many requests in all; 0: no cap
  double request_timeout_s = 10;   // a request not answered in this time fails
  std::string json_path;           // also write the figures here when not empty
  bool fail_on_error = false;      // exit 1 when any request failed
  bool help = false;               // --help was given: print usage, run nothing
};

inline constexpr int kMaxConnections = 1024;
inline constexpr double kMaxDurationS = 3600;
inline constexpr int kMaxGuests = 1'000'000;
inline constexpr int kMaxContentBytes = 32768;

// The usage text printed by --help and after a usage error.
std::string LoadUsage();

// Parses argv[1..argc-1]. Returns the options, or every error found, each
// naming the option and what to pass instead.
std::variant<LoadOptions, std::vector<std::string>> ParseLoadOptions(const std::vector<std::string>& args);

// Splits "http://HOST:PORT" (an optional trailing "/" allowed) into its host
// and port. Only loopback hosts are accepted: 127.0.0.0/8, ::1 (written
// [::1]) and localhost, which is taken as 127.0.0.1. Returns an error text
// or an empty string.
std::string ParseLoopbackUrl(const std::string& url, std::string* host, std::uint16_t* port);

// Parses "post=W,get=W" (either may be left out, meaning 0; at least one
// weight above 0). Returns an error text or an empty string.
std::string ParseMix(const std::string& mix, int* post_weight, int* get_weight);

}  // namespace stowage::bench
