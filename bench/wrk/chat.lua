-- wrk script for bench/run: POSTs or GETs of guest chat, spread over guests.
--
-- Environment (read once per wrk thread):
--   BENCH_MODE     post | get | post-one | post-new   (default post)
--                  post      POST to guest <prefix><k>, k = 0 .. BENCH_GUESTS-1 in turn
--                  get       GET of the same guests in turn
--                  post-one  POST, always to guest <prefix>0 (a guest that grows)
--                  post-new  POST, each to a guest never written before
--   BENCH_GUESTS   number of guests (default 1000)
--   BENCH_PREFIX   guest id prefix (default "bench-")
--   BENCH_CONTENT  the message content, JSON-safe text (default: 200 bytes of English)
--   BENCH_DELAY_MS each connection waits this long before each request
--                  (default 0: back to back); a fixed offered load of about
--                  connections * 1000 / BENCH_DELAY_MS requests per second
-- At the end, one JSON line starting
-- with "WRK_JSON " holds the counts and the latency percentiles (ms).

local mode = os.getenv("BENCH_MODE") or "post"
local guests = tonumber(os.getenv("BENCH_GUESTS") or "1000")
local prefix = os.getenv("BENCH_PREFIX") or "bench-"

-- 200 bytes of plain English, as a guest's chat message would be.
local content = ("Could you remind me what we said about the delivery window for the spare parts? " ..
                 "I think it was Tuesday morning, but the invoice from the warehouse says otherwise, ok.")
content = os.getenv("BENCH_CONTENT") or (content .. string.rep(" ", 200)):sub(1, 200)
local body = '{"role":"user","content":"' .. content .. '"}'
local headers = { ["Content-Type"] = "application/json" }

-- wrk calls delay() before each request only when the script defines it.
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

local threads = {}
local thread_index = 0

function setup(thread)
  thread:set("id", thread_index)
  thread_index = thread_index + 1
  table.insert(threads, thread)
end

function init(args)
  -- Threads start at different guests, so they do not queue on one row.
  counter = id * 7919
  nthreads = thread_index
  started = os.time()
end

local function guest_path(k)
  return "/v1/guest/chat/" .. prefix .. tostring(k)
end

function request()
  counter = counter + 1
  if mode == "get" then
    return wrk.format("GET", guest_path(counter % guests))
  elseif mode == "post-one" then
    return wrk.format("POST", guest_path(0), headers, body)
  elseif mode == "post-new" then
    return wrk.format("POST", guest_path("new-" .. tostring(id) .. "-" .. tostring(counter)), headers, body)
  end
  return wrk.format("POST", guest_path(counter % guests), headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_s":%.3f,"errors_connect":%d,"errors_read":%d,' ..
    '"errors_write":%d,"errors_status":%d,"errors_timeout":%d,' ..
    '"p50_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,"mean_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, summary.duration / 1e6, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    latency.mean / 1000, latency.max / 1000))
end
