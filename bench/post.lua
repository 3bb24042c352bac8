-- wrk script: POST a different patient's chart with every request, each with its own pre-signed JWT.
--
--   wrk -t1 -c8 -d10s -s bench/post.lua http://127.0.0.1:PORT -- PATH MANIFEST TOKENS_PREFIX RESULT_FILE RUN [MAX]
--
-- MANIFEST lists request files (one path a line: the charts of one scenario, bench/generate.py). Each
-- request takes the next chart, round the list, and replaces every "@@@@@@@@@@@@" in it (the patient id
-- and the hookInstance) with twelve hex digits of its own: RUN (0-4094, one per wrk run of a benchmark),
-- the thread and the request's number. So no two requests of a benchmark send the same chart bytes, and
-- nothing the server derives from one call can answer another.
--
-- Thread i (0-based) reads its tokens from TOKENS_PREFIX.i, one JWT per line, and sends token n with
-- request n. When a thread runs out it stops (wrk.thread:stop()) and the result says so: a run whose
-- tokens ran out is not a valid measurement, and the benchmark runner refuses it. TOKENS_PREFIX "-"
-- sends no Authorization header (the ceiling apps check none); then MAX, if given, bounds the requests
-- per thread the same way. done() writes the summary as JSON.

local STAMP = "@@@@@@@@@@@@"

local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local function read_all(path)
   local file = assert(io.open(path, "rb"), "cannot open " .. path)
   local data = file:read("*a")
   file:close()
   return data
end

-- A chart as the pieces between its stamps: table.concat(pieces, stamp) is the request body.
local function split(data)
   local pieces, start = {}, 1
   while true do
      local at = string.find(data, STAMP, start, true)
      if at == nil then
         pieces[#pieces + 1] = string.sub(data, start)
         return pieces
      end
      pieces[#pieces + 1] = string.sub(data, start, at - 1)
      start = at + #STAMP
   end
end

-- globals, not locals: done() reads them from each thread with thread:get()
tokens = {}
used = 0
exhausted = false
result_path = nil
local path, charts, headers, use_tokens, max_requests, run_id

function init(args)
   path = args[1]
   charts = {}
   for line in io.lines(args[2]) do
      if #line > 0 then charts[#charts + 1] = split(read_all(line)) end
   end
   assert(#charts > 0, "no chart in " .. args[2])
   use_tokens = args[3] ~= "-"
   result_path = args[4]
   run_id = tonumber(args[5])
   assert(run_id and run_id >= 0 and run_id < 4095, "RUN must be 0-4094")
   max_requests = tonumber(args[6] or "0") or 0
   if use_tokens then
      local file = assert(io.open(args[3] .. "." .. tostring(tid), "r"), "no token file for thread " .. tostring(tid))
      for line in file:lines() do
         if #line > 0 then tokens[#tokens + 1] = line end
      end
      file:close()
   end
   headers = {["Content-Type"] = "application/json", ["Accept"] = "application/json"}
end

function request()
   used = used + 1
   if use_tokens then
      local token = tokens[used]
      if token == nil then
         used = used - 1
         exhausted = true
         wrk.thread:stop()
         headers["Authorization"] = nil  -- answered 401 if it still goes out: never a reused token
      else
         headers["Authorization"] = "Bearer " .. token
      end
   elseif max_requests > 0 and used > max_requests then
      used = used - 1
      exhausted = true
      wrk.thread:stop()
   end
   local chart = charts[(run_id * 37 + used) % #charts + 1]
   local stamp = string.format("%03x%01x%08x", run_id, tid % 16, used)
   return wrk.format("POST", path, headers, table.concat(chart, stamp))
end

function done(summary, latency, requests)
   -- the main Lua state never ran init(): take the result path from the first thread
   local out_path = threads[1]:get("result_path")
   local per_thread = {}
   local any_exhausted = false
   for _, thread in ipairs(threads) do
      local u = thread:get("used") or 0
      local e = thread:get("exhausted") or false
      any_exhausted = any_exhausted or e
      per_thread[#per_thread + 1] = string.format('{"tokens_used": %d, "exhausted": %s}', u, tostring(e))
   end
   local p = function(q) return latency:percentile(q) end
   local out = string.format(
      '{"duration_us": %d, "requests": %d, "bytes": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"latency_us": {"min": %d, "mean": %.1f, "stdev": %.1f, "max": %d, ' ..
      '"p50": %d, "p90": %d, "p99": %d, "p99_9": %d}, ' ..
      '"tokens_exhausted": %s, "threads": [%s]}\n',
      summary.duration, summary.requests, summary.bytes,
      summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
      summary.errors.timeout,
      latency.min, latency.mean, latency.stdev, latency.max,
      p(50), p(90), p(99), p(99.9),
      tostring(any_exhausted), table.concat(per_thread, ", "))
   local file = assert(io.open(out_path, "w"))
   file:write(out)
   file:close()
end
