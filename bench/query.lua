-- query: the same InfluxQL question asked again and again, as a dashboard or the watch page would.
--   QUERY   InfluxQL text (URL-encoded here)
--   DB      database, default user1
--   EPOCH   timestamp precision of the answer, default ms
--   BASIC   base64 of "user:password"
local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local query = os.getenv("QUERY") or error("QUERY is required")
local path = "/query?db=" .. urlencode(os.getenv("DB") or "user1") .. "&epoch=" .. (os.getenv("EPOCH") or "ms")
  .. "&q=" .. urlencode(query)
local headers = {["Authorization"] = "Basic " .. (os.getenv("BASIC") or "")}

request = function()
  return wrk.format("GET", path, headers)
end
