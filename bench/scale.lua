-- wrk script: replay at scale; GETs of random recorded items of a seeded tape.
-- usage: wrk ... -s bench/scale.lua http://PROXY/ -- ORIGIN_PORT N_RECORDINGS MAX_REQUESTS
-- bench/seed.py seeds item i as GET /api/items/{i}?fields=all, except every tenth (a POST).
-- reqs, idx, sent and cap are wrkjson.lua's (loaded at the end); init fills reqs and cap

function init(args)
  local port, n = args[1], tonumber(args[2])
  cap = tonumber(args[3]) or math.huge
  local headers = {["Host"] = "127.0.0.1:" .. port, ["Accept"] = "application/json",
                   ["User-Agent"] = "wiretape-bench/1 (scale)"}
  math.randomseed(n * 7919)
  for k = 1, 4096 do
    local i = math.random(0, n - 1)
    if i % 10 == 0 then i = (i + 1) % n end
    reqs[k] = wrk.format("GET", "http://127.0.0.1:" .. port .. "/api/items/" .. i ..
                         "?fields=all", headers)
  end
end

-- request() (round-robin over reqs, stopping after cap) and done() (the summary line
-- bench/harness.py reads), shared with the other wrk scripts
dofile(debug.getinfo(1, "S").source:match("^@?(.*/)") .. "wrkjson.lua")
