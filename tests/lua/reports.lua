-- Rules for reports_test.lua: delivery reports in `smsrules test` (dlr,
-- provider(name):dlr), fallback on the delivery outcome, sms.on_status.
-- The URLs are never used: `smsrules test` simulates the providers.
sms.config{ default_country = "84" }

sms.provider("primary", { adapter = "mock", url = "http://127.0.0.1:9/send" })
sms.provider("backup", { adapter = "mock", url = "http://127.0.0.1:9/send" })
-- A provider whose statuses the daemon would poll: not polled in tests.
sms.provider("polled", { adapter = "smsbat", url = "http://127.0.0.1:9", api_key = "k", sender = "Shop",
                         poll = true })

-- Default: an undelivered report, or none within 60 s, sends the message on
-- to the backup. tags.route = "plain": the same providers without that.
sms.route(function(msg)
  local name = msg.tags and msg.tags.route
  if name == "plain" then return { "primary", "backup" } end
  if name == "polled" then return { "polled" } end
  return { "primary", "backup", fallback_on = { "undelivered" }, dlr_timeout = 60 }
end)

sms.on_status(function(msg, status)
  sms.kv.incr("status:" .. status)
  sms.kv.set("last:" .. msg.id, status .. " " .. (msg.provider or "-") .. " " .. (msg.error or "-"))
end)

sms.on("read", function(ev) return { value = sms.kv.get(ev.key) } end)
