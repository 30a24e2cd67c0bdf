-- What every wrk script of bench/ shares, loaded with dofile() by mix.lua and scale.lua
-- (whose init() fills `reqs` and `cap`): request() goes round the
-- prepared requests and stops the thread after `cap`; done() writes one WRKJSON line with
-- the summary and the latency percentiles, parsed by bench/harness.py.

-- per wrk thread (each has its own Lua state): the prepared requests, where the round is,
-- and the bound in count as well as time (-d): the thread stops after MAX_REQUESTS
reqs = {}
idx = 0
sent, cap = 0, math.huge

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
