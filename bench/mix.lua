-- wrk script: the realistic test-suite mix (bench/workload.py writes the request table).
-- usage: wrk ... -s bench/mix.lua http://PROXY/ -- REQUESTS.lua absolute|origin-form MAX_REQUESTS
-- Requests go out in absolute form (http://origin/path), as a client behind HTTP_PROXY
-- sends them; "origin-form" strips the scheme and authority to hit the origin directly.
-- reqs, idx, sent and cap are wrkjson.lua's (loaded at the end); init fills reqs and cap

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

-- request() (round-robin over reqs, stopping after cap) and done() (the summary line
-- bench/harness.py reads), shared with the other wrk scripts
dofile(debug.getinfo(1, "S").source:match("^@?(.*/)") .. "wrkjson.lua")
