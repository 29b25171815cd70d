-- Rules for kv_ttl_test.lua: sms.kv.set / incr with the TTL the event names.
local TTL = { huge = math.huge, nan = 0 / 0, neg_huge = -math.huge }

local function ttl_of(ev)
  local t = ev.ttl
  if type(t) == "string" then return TTL[t] end
  return t
end

sms.on("set", function(ev)
  local ok, err = pcall(sms.kv.set, ev.key, ev.value, ttl_of(ev))
  return { ok = ok, error = not ok and tostring(err) or nil }
end)

sms.on("incr", function(ev)
  local ok, v = pcall(sms.kv.incr, ev.key, 1, ttl_of(ev))
  return { ok = ok, value = ok and v or nil, error = not ok and tostring(v) or nil }
end)

sms.on("read", function(ev) return { value = sms.kv.get(ev.key) } end)
