-- Rules for status_test.lua: sms.on_status sees each committed status change.
sms.config{ api_keys = { "k" }, retry_base_ms = 100, retry_cap_ms = 100 }
sms.provider("p", { adapter = "mock", url = "http://127.0.0.1:9/send", max_attempts = 2 })

sms.on_status(function(msg, status)
  sms.kv.incr("status:" .. status)
  sms.kv.set("last:" .. msg.id, status .. " " .. (msg.provider or "-") .. " " .. (msg.tags.order or "-"))
  if status == "failed" then
    -- A rule reacting to a failure: tell someone else.
    sms.send{ to = "+84900000001", text = "message " .. msg.id .. " failed: " .. (msg.error or "?") }
  end
end)

sms.on("read", function(ev) return { value = sms.kv.get(ev.key) } end)
sms.on("send_route", function(ev)
  local id, err = sms.send{ to = "+84912345678", text = "routed", route = ev.route }
  return { id = id, err = err }
end)
