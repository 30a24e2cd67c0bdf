-- wrk script: the realistic test-suite mix (bench/workload.py writes the request table).
-- usage: wrk ... -s bench/mix.lua http://PROXY/ -- REQUESTS.lua absolute|origin-form MAX_REQUESTS
-- Requests go out in absolute form (http://origin/path), as a client behind HTTP_PROXY
-- sends them; "origin-form" strips the scheme and authority to hit the origin directly.
local reqs = {}
local idx = 0
-- bounded in count as well as time (-d): the thread stops after MAX_REQUESTS
local sent, cap = 0, math.huge

function init(args)
  local spec = dofile(args[1])
  local origin_form = args[2] == "origin-form"
  cap = tonumber(args[3]) or math.huge
  for i, r in ipairs(spec) do
    local target = r[2]
    if origin_form then
      target = target:gsub("^https?://[^/]+", "")
    end
    reqs[i] = wrk.format(r[1], target, r[3], r[4])
  end
end

function request()
  sent = sent + 1
  if sent > cap then wrk.thread:stop() end
  idx = idx % #reqs + 1
  return reqs[idx]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
