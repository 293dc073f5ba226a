-- wrk script for the Roost benchmarks.
-- Arguments (after the URL): token_file threads method path body
-- Each request carries the next bearer token of the file, round-robin, thread i taking the
-- tokens i, i+threads, ... so every token is used once until the list runs out ("wrapped"
-- counts the requests sent after that). "{n}" in the body becomes a unique number.
-- done() prints one JSON line: requests, duration, errors and latency percentiles in µs.

local threads = {}
local next_tid = 0

function setup(thread)
   thread:set("tid", next_tid)
   next_tid = next_tid + 1
   table.insert(threads, thread)
end

tokens = {}
pos = 1
step = 1
counter = 0
wrapped = 0
method = "GET"
path = "/"
body = nil

function init(args)
   local f = assert(io.open(args[1], "r"))
   for line in f:lines() do
      if line ~= "" then tokens[#tokens + 1] = line end
   end
   f:close()
   step = tonumber(args[2])
   pos = tid + 1
   method = args[3]
   path = args[4]
   if args[5] ~= nil and args[5] ~= "" then body = args[5] end
end

function request()
   local token = tokens[pos]
   if token == nil then
      wrapped = wrapped + 1
      pos = ((pos - 1) % #tokens) + 1
      token = tokens[pos]
   end
   pos = pos + step
   counter = counter + 1
   local headers = {}
   if token ~= "-" then headers["Authorization"] = "Bearer " .. token end
   local b = nil
   if body ~= nil then
      b = string.gsub(body, "{n}", tid .. "x" .. counter)
      headers["Content-Type"] = "application/x-www-form-urlencoded"
   end
   return wrk.format(method, path, headers, b)
end

function done(summary, latency, requests)
   local total_wrapped = 0
   for _, thread in ipairs(threads) do
      total_wrapped = total_wrapped + (thread:get("wrapped") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      '{"requests":%d,"duration_us":%d,"bytes":%d,"wrapped":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
      summary.requests, summary.duration, summary.bytes, total_wrapped,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9)))
end
