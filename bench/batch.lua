-- batch: one user uploads a recorded activity in big chunks.
-- Every request carries LINES lines (8 vocabulary fields each, precision=s), every line one second
-- later than the one before, so each request inserts new samples instead of overwriting old ones.
--   DB      database (= user) written to, default user0
--   BASIC   base64 of "user:password"
--   LINES   lines per request, default 5000
--   T0      first timestamp minus one, in seconds
local db = os.getenv("DB") or "user0"
local lines_per_request = tonumber(os.getenv("LINES") or "5000")
local second = tonumber(os.getenv("T0") or "1000000000")
local path = "/write?db=" .. db .. "&precision=s"
local headers = {
  ["Authorization"] = "Basic " .. (os.getenv("BASIC") or ""),
  ["Content-Type"] = "text/plain; charset=utf-8",
}

-- The field part of a line repeats every hour of "ride"; building it once keeps wrk's own CPU use low.
local fields = {}
for i = 0, 3599 do
  fields[i] = string.format(
    "samples lat=%.6f,lng=%.6f,alt_m=%.1f,spd_kph=%.2f,hr_bpm=%d,cad_rpm=%d,pwr_w=%d,dist_km=%.3f ",
    48.1 + 0.02 * math.sin(i / 400), 11.5 + 0.03 * math.cos(i / 400), 520 + 40 * math.sin(i / 700),
    28 + 6 * math.sin(i / 90), 140 + math.floor(15 * math.sin(i / 250)), 88 + i % 7,
    230 + math.floor(60 * math.sin(i / 45)), i * 0.0078)
end

request = function()
  local body = {}
  for i = 1, lines_per_request do
    second = second + 1
    body[i] = fields[second % 3600] .. string.format("%d", second)
  end
  return wrk.format("POST", path, headers, table.concat(body, "\n"))
end
