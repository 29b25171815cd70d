-- Tests of the auto-reply rules (rules.lua beside this file), offline:
--   smsrules test examples/auto-reply/rules_test.lua
-- The mock provider is simulated; each test starts from an empty store, and
-- the clock moves only with advance().

local ALICE, BOB = "+84912000111", "+84912000222"

local HELP = "MyClub: reply JOIN to register, INFO for what we send, STOP to unsubscribe, START to subscribe again."
local INFO = "MyClub sends at most 4 offers a month. Msg&data rates may apply. Reply HELP for help, STOP to unsubscribe."
local ASK_NAME = "Welcome to MyClub! What is your name?"
local UNKNOWN = "Sorry, we did not understand. Reply HELP for help."

-- Sends an inbound SMS from `from` and returns the text of the one reply it
-- got (asserting there is exactly one, addressed to the sender, reply_to set).
local function reply_to(from, text)
  local r = inbound{ from = from, to = "8100", text = text, provider = "mock" }
  assert_eq(r.error, nil)
  assert_eq(#r.ids, 1, "one reply to " .. text)
  local m = message(r.ids[1])
  assert_eq(m.to, from)
  assert_eq(m.reply_to, r.id)
  assert_eq(m.status, "sent")
  return m.text
end

local function texts()
  local out = {}
  for i, s in ipairs(sent()) do out[i] = s.text end
  return out
end

test("keywords are recognised whatever the case and the whitespace", function()
  assert_eq(reply_to(ALICE, "HELP"), HELP)
  assert_eq(reply_to(ALICE, "  help  "), HELP)
  assert_eq(reply_to(ALICE, "\tHeLp\n"), HELP)
  assert_eq(reply_to(ALICE, "info"), INFO)
  assert_eq(reply_to(ALICE, " Info please"), INFO)
  assert_eq(texts(), { HELP, HELP, HELP, INFO, INFO }, "each reply reached the provider")
end)

test("any other text gets the fallback reply", function()
  assert_eq(reply_to(ALICE, "what is this?"), UNKNOWN)
  assert_eq(reply_to(ALICE, "helpless"), UNKNOWN, "a keyword must be a whole word")
end)

test("STOP opts out and is confirmed; a marketing trigger to that number ends rejected", function()
  local r = fire("promo", { phone = ALICE, offer = "20% off." })
  assert_eq(message(r.ids[1]).status, "sent", "subscribed: the offer goes out")
  assert_match(reply_to(ALICE, "  stop "), "^You are unsubscribed")
  assert_true(is_optout(ALICE))
  assert_eq(is_optout(BOB), false)
  r = fire("promo", { phone = ALICE, offer = "30% off." })
  assert_eq(r.status, 202)
  local m = message(r.ids[1])
  assert_eq(m.status, "rejected")
  assert_match(m.error, "opted out")
  -- the number given in its national form is the same subscriber
  r = fire("promo", { phone = "0912000111", offer = "40% off." })
  assert_eq(message(r.ids[1]).status, "rejected")
  -- another subscriber still gets it
  r = fire("promo", { phone = BOB, offer = "30% off." })
  assert_eq(message(r.ids[1]).status, "sent")
  assert_eq(texts(), { "MyClub: 20% off. Reply STOP to unsubscribe.",
                       "You are unsubscribed from MyClub and will get no more offers. Reply START to subscribe again.",
                       "MyClub: 30% off. Reply STOP to unsubscribe." })
end)

test("replies still reach an opted-out number: HELP after STOP is answered", function()
  inbound{ from = ALICE, text = "STOP" }
  assert_eq(reply_to(ALICE, "help"), HELP)
  assert_true(is_optout(ALICE), "asking for help does not opt in")
end)

test("START after STOP subscribes again", function()
  inbound{ from = ALICE, text = "Stop" }
  assert_eq(reply_to(ALICE, " START"), "You are subscribed to MyClub offers again. Reply STOP to unsubscribe.")
  assert_eq(is_optout(ALICE), false)
  local r = fire("promo", { phone = ALICE, offer = "Back!" })
  assert_eq(message(r.ids[1]).status, "sent")
  assert_eq(sent()[#sent()].text, "MyClub: Back! Reply STOP to unsubscribe.")
end)

test("JOIN asks for the name; the next message is the name", function()
  assert_eq(reply_to(ALICE, "join"), ASK_NAME)
  assert_eq(reply_to(ALICE, "  Alice   Smith "), "Thanks, Alice Smith, you are registered.")
  assert_eq(fire("member", { phone = ALICE }).result, { name = "Alice Smith" })
  -- the conversation is over: the next message is not taken as a name
  assert_eq(reply_to(ALICE, "Bob"), UNKNOWN)
  assert_eq(fire("member", { phone = ALICE }).result, { name = "Alice Smith" })
  assert_eq(reply_to(ALICE, "JOIN"), "You are already registered, Alice Smith.")
end)

test("conversations are per sender", function()
  assert_eq(reply_to(ALICE, "JOIN"), ASK_NAME)
  assert_eq(reply_to(BOB, "Bob"), UNKNOWN, "Bob is not in a conversation")
  assert_eq(reply_to(ALICE, "Alice"), "Thanks, Alice, you are registered.")
  assert_eq(fire("member", { phone = BOB }).result, {})
end)

test("keywords win over a conversation in progress; STOP ends it", function()
  assert_eq(reply_to(ALICE, "JOIN"), ASK_NAME)
  assert_eq(reply_to(ALICE, "help"), HELP, "HELP is not taken as a name")
  assert_eq(reply_to(ALICE, "Alice"), "Thanks, Alice, you are registered.")
  assert_eq(reply_to(BOB, "JOIN"), ASK_NAME)
  reply_to(BOB, "STOP")
  assert_eq(reply_to(BOB, "Bob"), UNKNOWN, "STOP ended the conversation")
end)

test("a long name is cut on a character boundary", function()
  reply_to(ALICE, "JOIN")
  local name = string.rep("é", 40)
  assert_eq(reply_to(ALICE, name), "Thanks, " .. string.rep("é", 30) .. ", you are registered.")
end)

test("the conversation waits up to 10 minutes", function()
  reply_to(ALICE, "JOIN")
  advance(599)
  assert_eq(reply_to(ALICE, "Alice"), "Thanks, Alice, you are registered.")
end)

test("an expired conversation starts over", function()
  reply_to(ALICE, "JOIN")
  advance(601)
  assert_eq(reply_to(ALICE, "Alice"), UNKNOWN, "the question expired: not taken as a name")
  assert_eq(fire("member", { phone = ALICE }).result, {})
  assert_eq(reply_to(ALICE, "JOIN"), ASK_NAME, "JOIN asks again")
  assert_eq(reply_to(ALICE, "Alice"), "Thanks, Alice, you are registered.")
end)

test("at most 5 replies a minute per sender; the 6th gets none; replies resume after 60 s", function()
  for i = 1, 5 do assert_eq(reply_to(ALICE, "are you a bot? " .. i), UNKNOWN) end
  local r = inbound{ from = ALICE, text = "are you a bot? 6" }
  assert_true(r.handled)
  assert_eq(r.error, nil)
  assert_eq(r.ids, {}, "no reply")
  assert_eq(r.result, "rate_limited")
  assert_eq(#sent(), 5)
  -- the limit is per sender
  assert_eq(reply_to(BOB, "hi"), UNKNOWN)
  advance(60)
  for i = 7, 11 do assert_eq(reply_to(ALICE, "are you a bot? " .. i), UNKNOWN) end
  assert_eq(inbound{ from = ALICE, text = "are you a bot? 12" }.ids, {}, "a full minute gives 5 again")
  assert_eq(#sent(), 11)
end)

test("after the burst of 5 the limit refills at one reply every 12 s", function()
  for i = 1, 5 do reply_to(ALICE, "loop " .. i) end
  advance(11)
  assert_eq(inbound{ from = ALICE, text = "loop 6" }.ids, {}, "not yet")
  advance(1)
  assert_eq(reply_to(ALICE, "loop 7"), UNKNOWN)
  assert_eq(inbound{ from = ALICE, text = "loop 8" }.ids, {}, "one, not five")
end)

test("a rate-limited STOP still opts out, without a confirmation", function()
  for _ = 1, 5 do reply_to(ALICE, "HELP") end
  local r = inbound{ from = ALICE, text = "STOP" }
  assert_eq(r.ids, {})
  assert_eq(r.result, "rate_limited")
  assert_true(is_optout(ALICE))
  assert_eq(message(fire("promo", { phone = ALICE, offer = "x" }).ids[1]).status, "rejected")
end)

test("a rate-limited name still completes the registration", function()
  reply_to(ALICE, "JOIN")
  for _ = 1, 4 do reply_to(ALICE, "INFO") end
  local r = inbound{ from = ALICE, text = "Alice" }
  assert_eq(r.ids, {})
  assert_eq(fire("member", { phone = ALICE }).result, { name = "Alice" })
end)
