-- Auto-reply rules: keywords (STOP, START, HELP, INFO), opt-out honoured by
-- every send, a two-step registration kept in sms.kv, and a per-sender rate
-- limit on replies against reply loops. Tested offline by rules_test.lua
-- beside it: `smsrules test examples/auto-reply/rules_test.lua`.
sms.config{
  listen = "127.0.0.1:8080",
  data = "./data",
  api_keys = { sms.env("SMSRULES_DEMO_KEY") or "demo-key" },
  default_country = "84",
}

-- The built-in mock provider (`smsrules mock-provider` on :9090): no account needed.
sms.provider("mock", { adapter = "mock", url = "http://127.0.0.1:9090/send" })

-- How long a started registration waits for the name, and the reply limit.
local CONVERSATION_TTL = 600   -- seconds (10 minutes)
local REPLIES, PER = 5, 60     -- at most 5 replies per 60 s per sender (a burst of 5, then one every 12 s)
local NAME_MAX = 30            -- characters kept of a name

sms.template("help", "MyClub: reply JOIN to register, INFO for what we send, STOP to unsubscribe, START to subscribe again.")
sms.template("info", "MyClub sends at most 4 offers a month. Msg&data rates may apply. Reply HELP for help, STOP to unsubscribe.")
sms.template("unsubscribed", "You are unsubscribed from MyClub and will get no more offers. Reply START to subscribe again.")
sms.template("subscribed", "You are subscribed to MyClub offers again. Reply STOP to unsubscribe.")
sms.template("ask_name", "Welcome to MyClub! What is your name?")
sms.template("registered", "Thanks, {{name}}, you are registered.")
sms.template("already_registered", "You are already registered, {{name}}.")
sms.template("unknown", "Sorry, we did not understand. Reply HELP for help.")
sms.template("promo", "MyClub: {{offer}} Reply STOP to unsubscribe.")

-- A marketing trigger: POST /v1/events/promo {"phone": "0912345678", "offer": "20% off this weekend."}
-- It does not look at the opt-out list itself: the engine refuses every send
-- to an opted-out number (the message ends `rejected` and never reaches the
-- provider). Only replies to an inbound SMS go out regardless, which is what
-- lets the STOP confirmation reach the number that has just opted out.
sms.on("promo", function(ev)
  return assert(sms.send{ to = ev.phone, template = "promo", vars = ev })
end)

-- Who registered: POST /v1/events/member {"phone": "+84912345678"} → {"name": ...}
sms.on("member", function(ev)
  return { name = sms.kv.get("member:" .. ev.phone) }
end)

-- The keyword of a message: its first word, whatever the case and the
-- whitespace around it ("  stop ", "Stop please" and "STOP" are all STOP).
local KEYWORDS = { STOP = true, START = true, HELP = true, INFO = true, JOIN = true }
local function keyword(text)
  local word = text:upper():match("^%s*(%a+)")
  return KEYWORDS[word] and word or nil
end

-- A name as typed: trimmed, inner whitespace collapsed, at most NAME_MAX
-- characters (cut on a character boundary), or nil when nothing is left.
local function clean_name(text)
  local name = text:gsub("%s+", " "):match("^ ?(.-) ?$")
  if name == "" or not utf8.len(name) then return nil end
  if utf8.len(name) > NAME_MAX then name = name:sub(1, utf8.offset(name, NAME_MAX + 1) - 1) end
  return name
end

sms.on_inbound(function(msg)
  local from = msg.from
  local word = keyword(msg.text)
  local conv_key, member_key = "conv:" .. from, "member:" .. from

  -- State first, whatever the rate limit says: an opt-out is always honoured.
  local reply, vars
  if word == "STOP" then
    sms.optout(from)
    sms.kv.del(conv_key)               -- STOP also ends a registration in progress
    reply = "unsubscribed"
  elseif word == "START" then
    sms.optin(from)
    reply = "subscribed"
  elseif word == "HELP" or word == "INFO" then
    reply = word:lower()
  elseif word == "JOIN" then
    local name = sms.kv.get(member_key)
    if name then
      reply, vars = "already_registered", { name = name }
    else
      -- Step 1: remember that we asked; forgotten after CONVERSATION_TTL, and
      -- the next message is then no answer to anything (send JOIN again).
      sms.kv.set(conv_key, "awaiting_name", CONVERSATION_TTL)
      reply = "ask_name"
    end
  elseif sms.kv.get(conv_key) == "awaiting_name" then
    -- Step 2: this message is the name.
    local name = clean_name(msg.text)
    if name then
      sms.kv.del(conv_key)
      sms.kv.set(member_key, name)
      reply, vars = "registered", { name = name }
    else
      reply = "ask_name"               -- nothing usable: ask again (the state keeps its TTL)
    end
  else
    reply = "unknown"
  end

  -- Replies: at most REPLIES per PER seconds per sender, so that two robots
  -- answering each other cannot loop. The state changes above still happen.
  local ok, retry_after = sms.ratelimit("reply:" .. from, REPLIES, PER)
  if not ok then
    sms.log.warn("auto-reply: rate limited, no reply", { from = from, keyword = word, retry_after = retry_after })
    return "rate_limited"
  end
  -- A refused reply is logged, not raised: raising would also discard the
  -- opt-out above (a handler that fails commits nothing).
  local id, err = sms.reply(msg, reply, vars)
  if not id then sms.log.error("auto-reply: reply refused", { from = from, error = err }) end
  return id
end)
