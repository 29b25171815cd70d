-- Rules for the test runner's own tests (runner_test.lua, failing_cases.lua).
-- The URLs are never used: `smsrules test` simulates the providers.
sms.config{ default_country = "84", retry_base_ms = 1000, retry_cap_ms = 4000 }

sms.provider("primary", { adapter = "mock", url = "http://127.0.0.1:9/send", max_attempts = 3, timeout_ms = 5000 })
sms.provider("backup", { adapter = "mock", url = "http://127.0.0.1:9/send" })
sms.provider("slow", { adapter = "mock", url = "http://127.0.0.1:9/send", rate = 1, burst = 1 })

sms.route(function(msg) return { "primary", "backup" } end)

sms.template("greeting", "Hello {{name}}!")

sms.on("greet", function(ev)
  return sms.send{ to = ev.phone, template = "greeting", vars = ev }
end)
sms.on("greet_many", function(ev)
  local ids = {}
  for i, phone in ipairs(ev.phones) do ids[i] = sms.send{ to = phone, text = "Hi " .. i } end
  return ids
end)
sms.on("echo", function(ev) return ev end)
sms.on("clock", function() return { time = os.time(), date = os.date("!%Y-%m-%d %H:%M"), now = sms.now() } end)
sms.on("remember", function(ev) sms.kv.set("note", ev.note, ev.ttl) end)
sms.on("recall", function() return { note = sms.kv.get("note") } end)
sms.on("broken", function() error("deliberate failure") end)

sms.on_inbound(function(msg)
  local word = msg.text:upper():match("^%s*(%a+)")
  if word == "STOP" then
    sms.optout(msg.from)
    return "unsubscribed"
  elseif word == "HELP" then
    return sms.reply(msg, "greeting", { name = "friend" })
  elseif word == "REFUSED" then
    -- What sms.reply says of a text or a number it cannot send, beside what sms.send says of the same.
    local bytes_id, bytes_err = sms.reply(msg, "bad \255 byte")
    local _, send_bytes_err = sms.send{ to = msg.from, text = "bad \255 byte" }
    local to_id, to_err = sms.reply({ id = msg.id, from = "not a number" }, "hello")
    local _, send_to_err = sms.send{ to = "not a number", text = "hello" }
    return { bytes_id = bytes_id, bytes_err = bytes_err, send_bytes_err = send_bytes_err,
             to_id = to_id, to_err = to_err, send_to_err = send_to_err }
  end
  return sms.reply(msg, "You said: " .. msg.text)
end)
