-- sms.kv TTLs: a huge one is clamped to the maximum (10 years), not lost to
-- an overflow; NaN, zero and negative ones are refused. Rules: kv_ttl.lua.
local YEAR = 365.25 * 86400
local MAX_TTL = 10 * YEAR

local function set(key, ttl) return fire("set", { key = key, value = "v", ttl = ttl }).result end
local function read(key) return fire("read", { key = key }).result.value end

-- advance() takes at most a year at a time.
local function advance_long(seconds)
  while seconds > 0 do
    local step = math.min(seconds, YEAR)
    advance(step)
    seconds = seconds - step
  end
end

test("a huge TTL keeps the value for the maximum, then it expires", function()
  for _, ttl in ipairs({ 1e17, "huge", 1e300, MAX_TTL + 1 }) do
    local key = "k" .. tostring(ttl)
    assert_eq(set(key, ttl).ok, true, tostring(ttl))
    assert_eq(read(key), "v", "right after set with ttl " .. tostring(ttl))
  end
  advance_long(MAX_TTL - 60)
  assert_eq(read("k1e+17"), "v", "a day short of 10 years")
  assert_eq(read("khuge"), "v")
  advance(120)
  assert_eq(read("k1e+17"), nil, "past 10 years")
  assert_eq(read("khuge"), nil)
  assert_eq(read("k1e+300"), nil)
end)

test("incr with a huge TTL keeps counting", function()
  assert_eq(fire("incr", { key = "c", ttl = "huge" }).result.value, 1)
  assert_eq(fire("incr", { key = "c", ttl = 1e17 }).result.value, 2)
  assert_eq(read("c"), "2")
  advance(YEAR)
  assert_eq(read("c"), "2")
end)

test("a TTL that is not a positive number is refused", function()
  for _, ttl in ipairs({ "nan", 0, -1, "neg_huge" }) do
    local r = set("bad", ttl)
    assert_eq(r.ok, false, "ttl " .. tostring(ttl) .. " accepted")
    assert_match(r.error, "ttl must be a positive number of seconds")
    local i = fire("incr", { key = "bad", ttl = ttl }).result
    assert_eq(i.ok, false, "incr ttl " .. tostring(ttl) .. " accepted")
  end
  assert_eq(read("bad"), nil)
end)

test("a small TTL still expires on time", function()
  assert_eq(set("short", 2).ok, true)
  advance(1)
  assert_eq(read("short"), "v")
  advance(2)
  assert_eq(read("short"), nil)
end)
