-- sms.on_status: runs after each status change the engine commits.
local function kv(key) return fire("read", { key = key }).result.value end

test("sent runs the status handler with the message", function()
  local id = send{ to = "+84912345678", text = "hi", tags = { order = "42" } }
  assert_eq(message(id).status, "sent")
  assert_eq(kv("status:sent"), "1")
  assert_eq(kv("last:" .. id), "sent p 42")
end)

test("a failed message runs it once, and the handler's own send goes out", function()
  provider("p"):reject("invalid number")
  local id = send{ to = "+84912345678", text = "hi" }
  assert_eq(message(id).status, "failed")
  assert_eq(kv("status:failed"), "1")
  local alert = sent()[2]
  assert_eq(alert.to, "+84900000001")
  assert_match(alert.text, "^message " .. id .. " failed: ")
end)

test("retries are not status changes; the final outcome is", function()
  provider("p"):fail(503):accept()
  local id = send{ to = "+84912345678", text = "hi" }
  advance(1)
  assert_eq(message(id).status, "sent")
  assert_eq(kv("status:sent"), "1")
  assert_eq(kv("status:failed"), nil)
end)

test("expiry runs it too", function()
  provider("p"):fail(503):fail(503)
  local id = send{ to = "+84912345678", text = "hi", validity = 1 }
  advance(5)
  local st = message(id).status
  assert_true(st == "expired" or st == "failed", "ended " .. st)
  assert_eq(kv("status:" .. st), "1")
end)

test("sms.send refuses a route naming an undeclared provider", function()
  local r = fire("send_route", { route = { "p", "nope" } })
  assert_eq(r.result.id, nil)
  assert_match(r.result.err, "^unknown_provider: .*'nope'")
  r = fire("send_route", { route = { "p" } })
  assert_true(r.result.id ~= nil, "a declared provider is fine")
end)
