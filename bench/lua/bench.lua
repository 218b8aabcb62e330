-- wrk script of the benchmark: send one fixed request, check each answer, print the summary as one JSON line.
--
-- Environment:
--   BENCH_METHOD       HTTP method (default POST)
--   BENCH_BODY_FILE    file holding the request body (optional); __BENCH_ID__ in it becomes a per-request number
--   BENCH_HEADER_FILE  file of "Name: value" lines (optional)
--   BENCH_EXPECT       a string every successful answer must contain; answers without it count as "bad"
--                      (an MCP tool error or a JSON-RPC error comes with status 200, so the status alone is not enough)

local method = os.getenv("BENCH_METHOD")
wrk.method = (method and method ~= "") and method or "POST"

local body_file = os.getenv("BENCH_BODY_FILE")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
end

local header_file = os.getenv("BENCH_HEADER_FILE")
if header_file and header_file ~= "" then
  local f = assert(io.open(header_file, "r"))
  for line in f:lines() do
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then
      wrk.headers[name] = value
    end
  end
  f:close()
end

-- A body holding __BENCH_ID__ gets a new number there for every request: JSON-RPC ids must be unique among the
-- requests in flight in one MCP session, or the server cannot tell their answers apart.
local template = wrk.body
if template and template:find("__BENCH_ID__", 1, true) then
  local counter = 0
  function request()
    counter = counter + 1
    return wrk.format(nil, nil, nil, (template:gsub("__BENCH_ID__", tostring(counter))))
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
  sample = ""
end

local expect = os.getenv("BENCH_EXPECT")
if expect and expect ~= "" then
  function response(status, headers, body)
    if status < 400 and not string.find(body, expect, 1, true) then
      bad = bad + 1
      if sample == "" then
        sample = "status " .. status .. ", body: " .. string.sub(body, 1, 200)
      end
    end
  end
end

local function quote(text)
  return '"' .. text:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function done(summary, latency, requests)
  local total_bad, bad_sample = 0, ""
  for _, thread in ipairs(threads) do
    total_bad = total_bad + (thread:get("bad") or 0)
    local s = thread:get("sample") or ""
    if bad_sample == "" then bad_sample = s end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"bad":%d},"bad_sample":%s,' ..
    '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout, total_bad, quote(bad_sample),
    latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
