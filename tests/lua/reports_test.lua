-- Delivery reports in `smsrules test`: dlr(msg_or_id, status, opts) and
-- provider(name):dlr(status, opts), applied through the real report engine
-- (forward only, per-part reports, parking, fallback_on and dlr_timeout),
-- with sms.on_status running for what they change. Rules: reports.lua.
local PHONE = "+84912345678"

local function kv(key) return fire("read", { key = key }).result.value end

local function field(list, name)
  local out = {}
  for i, s in ipairs(list) do out[i] = s[name] end
  return out
end

test("provider:dlr: each accepted message is delivered, sms.on_status sees it", function()
  provider("primary"):dlr("delivered")
  local id = send{ to = PHONE, text = "hi" }
  local m = message(id)
  assert_eq(m.status, "delivered")
  assert_eq(m.provider, "primary")
  assert_eq(m.attempts[1].report, "delivered")
  assert_eq(kv("status:sent"), "1")
  assert_eq(kv("status:delivered"), "1")
  assert_eq(kv("last:" .. id), "delivered primary -")
  local other = send{ to = PHONE, text = "again" }
  assert_eq(message(other).status, "delivered", "every message, not just the next one")
  assert_eq(kv("status:delivered"), "2")
end)

test("dlr(id): a report for a sent message; on_status has run when dlr returns", function()
  local id = send{ to = PHONE, text = "hi" }
  assert_eq(message(id).status, "sent")
  assert_eq(kv("status:delivered"), nil)
  dlr(id, "delivered")
  assert_eq(message(id).status, "delivered")
  assert_eq(kv("status:delivered"), "1")
  -- Forward only: the same report again, or one that says less, changes nothing.
  dlr(id, "delivered")
  dlr(sent()[1], "sent")
  assert_eq(message(id).status, "delivered")
  assert_eq(kv("status:delivered"), "1")
end)

test("undelivered without fallback_on: the message ends undelivered with the error", function()
  local id = send{ to = PHONE, text = "hi", tags = { route = "plain" } }
  dlr(message(id), "undelivered", { error = "absent subscriber" })
  local m = message(id)
  assert_eq(m.status, "undelivered")
  assert_match(m.error, "absent subscriber")
  assert_eq(#sent(), 1, "no other provider tried")
  assert_eq(kv("status:undelivered"), "1")
  assert_match(kv("last:" .. id), "^undelivered primary undelivered: absent subscriber$")
end)

test("undelivered with fallback_on: the backup sends, its report ends it", function()
  provider("primary"):dlr("undelivered", { error = "absent subscriber" })
  provider("backup"):dlr("delivered")
  local id = send{ to = PHONE, text = "hi" }
  local m = message(id)
  assert_eq(m.status, "delivered")
  assert_eq(m.provider, "backup")
  assert_eq(field(sent(), "provider"), { "primary", "backup" })
  assert_eq(field(m.attempts, "report"), { "undelivered", "delivered" })
  -- The fallback is not a status change sms.on_status sees: sent twice, then delivered.
  assert_eq(kv("status:undelivered"), nil)
  assert_eq(kv("status:sent"), "2")
  assert_eq(kv("status:delivered"), "1")
  assert_eq(kv("last:" .. id), "delivered backup -")
end)

test("undelivered through dlr(): the backup takes the message before dlr returns", function()
  local id = send{ to = PHONE, text = "hi" }
  dlr(id, "undelivered")
  local m = message(id)
  assert_eq(m.status, "sent")
  assert_eq(m.provider, "backup")
  assert_eq(field(m.attempts, "report"), { "undelivered", nil })
  assert_eq(field(sent(), "provider"), { "primary", "backup" })
  -- The backup is the last of the route: its undelivered is the message's status.
  dlr(id, "undelivered", { error = "blocked" })
  assert_eq(message(id).status, "undelivered")
  assert_match(message(id).error, "blocked")
  assert_eq(#sent(), 2)
end)

test("no report within dlr_timeout: the backup sends once the clock passes it", function()
  local id = send{ to = PHONE, text = "hi" }
  advance(59)
  assert_eq(message(id).provider, "primary")
  assert_eq(#sent(), 1)
  advance(1)
  local m = message(id)
  assert_eq(m.status, "sent")
  assert_eq(m.provider, "backup")
  assert_eq(field(sent(), "provider"), { "primary", "backup" })
  assert_eq(m.attempts[1].error, "no final report in time")
  assert_eq(m.attempts[1].report, nil)
  -- dlr(id) speaks of the message's latest attempt: the backup's.
  dlr(id, "delivered")
  m = message(id)
  assert_eq(m.status, "delivered")
  assert_eq(m.attempts[1].report, nil)
  assert_eq(m.attempts[2].report, "delivered")
end)

test("a final report in time stops the deadline", function()
  provider("primary"):dlr("delivered")
  local id = send{ to = PHONE, text = "hi" }
  advance(600)
  assert_eq(message(id).status, "delivered")
  assert_eq(#sent(), 1)
end)

test("a late delivered for the primary: recorded on it, the message is delivered", function()
  local id = send{ to = PHONE, text = "hi" }
  advance(60)
  assert_eq(message(id).provider, "backup")
  local primary = sent()[1]
  assert_eq(primary.provider, "primary")
  dlr(primary, "delivered")
  local m = message(id)
  assert_eq(m.status, "delivered")
  assert_eq(m.attempts[1].report, "delivered")
  assert_eq(m.attempts[2].report, nil)
  assert_eq(kv("status:delivered"), "1")
  -- The backup's own report comes later: recorded on its attempt, the message stays delivered.
  dlr(sent()[2], "undelivered")
  m = message(id)
  assert_eq(m.status, "delivered")
  assert_eq(m.attempts[2].report, "undelivered")
  assert_eq(kv("status:undelivered"), nil)
end)

test("per-part reports combine: delivered once every part is", function()
  local text = string.rep("a", 400) -- 3 segments
  local id = send{ to = PHONE, text = text }
  assert_eq(message(id).segments, 3)
  dlr(id, "delivered", { part = 1, parts = 3 })
  dlr(id, "delivered", { part = 3, parts = 3 })
  local m = message(id)
  assert_eq(m.status, "sent", "part 2 has not reported")
  assert_eq(m.part_reports[1], "delivered")
  assert_eq(m.part_reports[2], nil)
  assert_eq(m.part_reports[3], "delivered")
  assert_eq(kv("status:delivered"), nil)
  dlr(id, "delivered", { part = 2, parts = 3 })
  assert_eq(message(id).status, "delivered")
  assert_eq(kv("status:delivered"), "1")
end)

test("per-part reports: one undelivered part makes the message undelivered", function()
  local id = send{ to = PHONE, text = string.rep("b", 400), tags = { route = "plain" } }
  dlr(id, "delivered", { part = 1 })
  dlr(id, "undelivered", { part = 2, error = "part lost" })
  assert_eq(message(id).status, "sent")
  dlr(id, "delivered", { part = 3 })
  local m = message(id)
  assert_eq(m.status, "undelivered")
  assert_eq(m.part_reports, { "delivered", "undelivered", "delivered" })
end)

test("a report before the send answer is parked, then applied", function()
  provider("primary"):delay(3)
  local id = send{ to = PHONE, text = "hi" }
  assert_eq(message(id).status, "sending")
  dlr(id, "delivered") -- the simulated provider already gave it an id (sent())
  assert_eq(message(id).status, "sending")
  advance(3)
  assert_eq(message(id).status, "delivered")
  assert_eq(kv("status:delivered"), "1")
end)

test("provider:dlr() turns the scripted reports off again", function()
  local p = provider("primary"):dlr("delivered")
  assert_eq(p:dlr(), p, "the provider, for chaining")
  local id = send{ to = PHONE, text = "hi" }
  assert_eq(message(id).status, "sent")
  provider("primary"):dlr("expired"):dlr(nil)
  assert_eq(message(send{ to = PHONE, text = "again" }).status, "sent")
end)

test("scripted reports follow the message's provider; rejected is a report too", function()
  provider("primary"):unauthorized()
  provider("backup"):dlr("rejected", { error = "spam filter" })
  local id = send{ to = PHONE, text = "hi" }
  local m = message(id)
  assert_eq(m.provider, "backup")
  assert_eq(m.status, "rejected")
  assert_match(m.error, "spam filter")
end)

test("a provider with poll = true is not polled in tests: dlr reports for it", function()
  local id = send{ to = PHONE, text = "hi", tags = { route = "polled" } }
  assert_eq(message(id).provider, "polled")
  advance(30)
  assert_eq(message(id).status, "sent")
  dlr(id, "delivered")
  assert_eq(message(id).status, "delivered")
end)

test("dlr names what is wrong", function()
  local ok, err = pcall(dlr, "nope", "delivered")
  assert_match(err, "no message 'nope'")
  provider("primary"):reject("invalid number")
  local id = send{ to = PHONE, text = "x" }
  ok, err = pcall(dlr, sent()[1], "delivered")
  assert_match(err, "not accepted %(outcome 'rejected'%)")
  ok, err = pcall(dlr, id, "delivered")
  assert_match(err, "message " .. id .. " was not accepted by a provider %(status failed%)")
  id = send{ to = PHONE, text = "y" }
  ok, err = pcall(dlr, id, "read")
  assert_match(err, "a report status: delivered, undelivered")
  ok, err = pcall(dlr, id, "delivered", { colour = "red" })
  assert_match(err, "unknown option 'colour'")
  ok, err = pcall(dlr, id, "delivered", { part = 4, parts = 3 })
  assert_match(err, "'part' is beyond 'parts'")
  ok, err = pcall(dlr, 42, "delivered")
  assert_match(err, "a message id, or a table")
  ok, err = pcall(function() provider("primary"):dlr("delivered", { part = 1 }) end)
  assert_match(err, "unknown option 'part' %(options: error%)")
  assert_eq(message(id).status, "sent", "nothing was applied")
end)

test("a late delivered while the backup's send is still out: the backup's answer is recorded, its report matches", function()
  provider("backup"):delay(5)
  local id = send{ to = PHONE, text = "hi" }
  advance(60)                                -- no report in time: on to the backup, whose answer takes 5 s
  dlr(sent()[1], "delivered")                -- the primary's late report
  assert_eq(message(id).status, "delivered")
  advance(5)                                 -- the backup answers
  local m = message(id)
  assert_eq(m.status, "delivered", "stays delivered")
  assert_eq(m.attempts[2].outcome, "sent", "the backup's attempt is closed")
  assert_true(m.attempts[2].provider_id ~= nil, "with its provider id")
  dlr(id, "delivered")                       -- the backup's own report: recorded on its attempt
  assert_eq(message(id).attempts[2].report, "delivered")
  assert_eq(kv("status:delivered"), "1", "on_status ran once for delivered")
end)

test("per-part reports for an earlier attempt combine on that attempt", function()
  local id = send{ to = PHONE, text = string.rep("a", 400) }
  advance(60)                                -- on to the backup
  dlr(sent()[1], "delivered", { part = 1, parts = 3 })
  assert_true(message(id).status ~= "delivered", "one part of three is not the message")
  dlr(sent()[1], "delivered", { part = 2, parts = 3 })
  dlr(sent()[1], "delivered", { part = 3, parts = 3 })
  assert_eq(message(id).status, "delivered")
  assert_eq(message(id).attempts[1].report, "delivered")
end)
