-- wrk script for bench/load/run: cycles over the chunk paths of a manifest and checks every
-- answer: status 200 and a body equal, byte for byte, to the original file's bytes at the
-- reference's [offset, offset + length). Also counts X-Cache values.
--
-- Configured by the environment (wrk gives every thread its own Lua state; all read it):
--   ZEC_LOAD_MANIFEST  TSV, one key a line: path \t file \t offset \t length (request order)
--   ZEC_LOAD_STARTS    number of distinct start offsets in the list (thread i starts at
--                      ((i - 1) % STARTS) * n / STARTS): equal to the threads to spread them,
--                      small so that several connections read the same cold key together
--   ZEC_LOAD_OUT       where done() writes the aggregated figures (JSON)
--
-- Run with as many threads as connections (-tN -cN): wrk's response() hook does not say which
-- request it answers, but a thread with one connection alternates request() and response(), so
-- the last path requested is the one answered and each body is checked against its own key.

local manifest = assert(os.getenv("ZEC_LOAD_MANIFEST"), "ZEC_LOAD_MANIFEST is not set")

local paths, expected = {}, {}
do
  local files = {}
  for line in io.lines(manifest) do
    local path, file, offset, length = line:match("^([^\t]+)\t([^\t]+)\t(%d+)\t(%d+)$")
    assert(path, "malformed manifest line: " .. line)
    local data = files[file]
    if not data then
      local f = assert(io.open(file, "rb"))
      data = f:read("*a")
      f:close()
      files[file] = data
    end
    offset, length = tonumber(offset), tonumber(length)
    assert(offset + length <= #data, "range past the end of " .. file)
    paths[#paths + 1] = path
    expected[#paths] = data:sub(offset + 1, offset + length)
  end
  assert(#paths > 0, "empty manifest " .. manifest)
end

-- main state: hand each thread its number, keep the threads for done()
local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", #threads)
end

-- thread state: counters are globals so that thread:get() can read them
responses, non2xx, mismatches, hit, miss, edge, inline, xother = 0, 0, 0, 0, 0, 0, 0, 0
problems, statuses = "", ""
local status_counts, problem_count = {}, 0
local requests, pos, last = {}, 0, nil

function init(args)
  local starts = tonumber(os.getenv("ZEC_LOAD_STARTS") or "1")
  for i, path in ipairs(paths) do requests[i] = wrk.format("GET", path) end
  pos = math.floor(((tid - 1) % starts) * #paths / starts)
end

function request()
  pos = pos % #paths + 1
  last = pos
  return requests[pos]
end

local function note(text)
  problem_count = problem_count + 1
  if problem_count <= 5 then problems = problems .. text .. "\n" end
end

function response(status, headers, body)
  responses = responses + 1
  local cache
  for name, value in pairs(headers) do
    if name:lower() == "x-cache" then cache = value end
  end
  if cache == "HIT" then hit = hit + 1
  elseif cache == "MISS" then miss = miss + 1
  elseif cache == "EDGE" then edge = edge + 1
  elseif cache == "INLINE" then inline = inline + 1
  else xother = xother + 1 end
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    status_counts[status] = (status_counts[status] or 0) + 1
    local parts = {}
    for s, n in pairs(status_counts) do parts[#parts + 1] = s .. "=" .. n end
    statuses = table.concat(parts, ",")
    note(string.format("%s: status %d, %s", paths[last], status, body:sub(1, 200)))
  elseif body ~= expected[last] then
    mismatches = mismatches + 1
    local want, at = expected[last], 1
    while at <= #body and at <= #want and body:byte(at) == want:byte(at) do at = at + 1 end
    note(string.format("%s: %d bytes, expected %d, first difference at byte %d (X-Cache %s)",
      paths[last], #body, #want, at - 1, tostring(cache)))
  end
end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function done(summary, latency, requests)
  local total = { responses = 0, non2xx = 0, mismatches = 0, hit = 0, miss = 0, edge = 0,
                  inline = 0, xother = 0 }
  local all_problems, all_statuses = {}, {}
  for _, thread in ipairs(threads) do
    for name in pairs(total) do total[name] = total[name] + (thread:get(name) or 0) end
    local p = thread:get("problems")
    if p and p ~= "" then all_problems[#all_problems + 1] = p end
    local s = thread:get("statuses")
    if s and s ~= "" then
      for code, n in s:gmatch("(%d+)=(%d+)") do
        all_statuses[code] = (all_statuses[code] or 0) + tonumber(n)
      end
    end
  end
  local status_parts = {}
  for code, n in pairs(all_statuses) do status_parts[#status_parts + 1] = json_string(code) .. ": " .. n end
  local e = summary.errors
  local out = {
    '"threads": ' .. #threads,
    '"keys": ' .. #paths,
    '"duration_us": ' .. summary.duration,
    '"requests": ' .. summary.requests,
    '"bytes": ' .. summary.bytes,
    '"requests_per_s": ' .. string.format("%.1f", summary.requests / (summary.duration / 1e6)),
    string.format('"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d}',
      e.connect, e.read, e.write, e.timeout, e.status),
    string.format('"latency_us": {"min": %d, "mean": %.0f, "stdev": %.0f, "max": %d, "p50": %d, "p90": %d, "p99": %d, "p999": %d}',
      latency.min, latency.mean, latency.stdev, latency.max, latency:percentile(50),
      latency:percentile(90), latency:percentile(99), latency:percentile(99.9)),
    '"checked": ' .. total.responses,
    '"non2xx": ' .. total.non2xx,
    '"statuses": {' .. table.concat(status_parts, ", ") .. '}',
    '"mismatches": ' .. total.mismatches,
    string.format('"x_cache": {"HIT": %d, "MISS": %d, "EDGE": %d, "INLINE": %d, "other": %d}',
      total.hit, total.miss, total.edge, total.inline, total.xother),
    '"problems": ' .. json_string(table.concat(all_problems, "")),
  }
  local path = os.getenv("ZEC_LOAD_OUT")
  local text = "{" .. table.concat(out, ", ") .. "}\n"
  if path then
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
  end
  io.write("load: checked ", total.responses, " answers: ", total.non2xx, " not 2xx, ",
    total.mismatches, " bodies differing from the original bytes; X-Cache HIT ", total.hit,
    ", MISS ", total.miss, ", other ", total.edge + total.inline + total.xother, "\n")
end
