-- live: USERS phones each post their newest sample as it happens, one line per request (precision=ms).
-- Requests go to the users in turn, each with its own credentials.
--   USERS            number of users, default 100 (user0 .. user<USERS-1>)
--   BASIC_0, ...     base64 of "userN:passwordN" for every user
--   T0_MS            first timestamp minus one, in milliseconds
local users = tonumber(os.getenv("USERS") or "100")
local ms = tonumber(os.getenv("T0_MS") or "1600000000000")
local paths, headers = {}, {}
for u = 0, users - 1 do
  paths[u] = "/write?db=user" .. u .. "&precision=ms"
  headers[u] = {
    ["Authorization"] = "Basic " .. (os.getenv("BASIC_" .. u) or ""),
    ["Content-Type"] = "text/plain; charset=utf-8",
  }
end
local sent = 0

request = function()
  local u = sent % users
  sent = sent + 1
  ms = ms + 1
  local body = string.format(
    "samples lat=%.6f,lng=%.6f,alt_m=%.1f,spd_kph=%.2f,hr_bpm=%d,cad_rpm=%d,pwr_w=%d,battery=%d %.0f",
    48.1 + u * 0.001 + (sent % 997) * 1e-6, 11.5 + (sent % 991) * 1e-6, 520.5, 27.3, 120 + sent % 50,
    85 + sent % 9, 180 + sent % 120, 100 - u % 60, ms)
  return wrk.format("POST", paths[u], headers[u], body)
end
