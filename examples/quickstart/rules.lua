-- Quickstart rules: what `make run` starts, next to `smsrules mock-provider`
-- on 127.0.0.1:9090 (a fake provider: no account needed). Tested offline by
-- rules_test.lua beside it: `smsrules test examples/quickstart/rules_test.lua`.
sms.config{
  listen = "127.0.0.1:8080",
  data = "./data",
  api_keys = { sms.env("SMSRULES_DEMO_KEY") or "demo-key" },
  -- The admin key: reloads (POST /v1/admin/reload) and the console at /console.
  admin_key = sms.env("ADMIN_KEY") or "demo-admin",
  default_country = "84",
}

-- The built-in mock provider; swap for a real one, e.g.
-- sms.provider("primary", { adapter = "generic", url = "https://api.example.com/sms", api_key = sms.env("SMS_KEY") })
sms.provider("mock", { adapter = "mock", url = "http://127.0.0.1:9090/send", rate = 50, burst = 10 })

-- Templates: {{path.to.value}} from the vars; a missing one is an error, never "".
sms.template("order_created", "Order #{{order.number}} confirmed. Total {{order.total}}. Thank you for shopping with us!")
sms.template("help", "MyShop order updates. Reply STOP to unsubscribe, START to subscribe again.")

-- A trigger: POST /v1/events/order.created {"phone": "0912345678", "order": {"number": 42, "total": "12.50"}}
-- One message per order, even when the shop sends the event twice. A send
-- that is refused (a bad number, a missing variable) answers 500 rule_error
-- with the reason, so the shop's backend sees it.
sms.on("order.created", function(ev)
  return assert(sms.send{ to = ev.phone, template = "order_created", vars = ev,
                          idempotency_key = "order-created-" .. ev.order.number })
end)

-- Auto-replies to inbound SMS: STOP, START and HELP, whatever the case.
sms.on_inbound(function(msg)
  local word = msg.text:upper():match("^%s*(%a+)")
  if word == "STOP" then
    sms.optout(msg.from)
    return sms.reply(msg, "You are unsubscribed from MyShop messages. Reply START to subscribe again.")
  elseif word == "START" then
    sms.optin(msg.from)
    return sms.reply(msg, "You are subscribed to MyShop messages again.")
  elseif word == "HELP" then
    return sms.reply(msg, "help")
  end
end)

sms.log.info("quickstart rules loaded", { providers = 1 })
