-- Quickstart rules: what `make run` starts, next to `smsrules mock-provider`
-- on 127.0.0.1:9090 (a fake provider: no account needed).
sms.config{
  listen = "127.0.0.1:8080",
  data = "./data",
  api_keys = { sms.env("SMSRULES_DEMO_KEY") or "demo-key" },
  default_country = "84",
}

-- The built-in mock provider; swap for a real one, e.g.
-- sms.provider("primary", { adapter = "generic", url = "https://api.example.com/sms", api_key = sms.env("SMS_KEY") })
sms.provider("mock", { adapter = "mock", url = "http://127.0.0.1:9090/send", rate = 50, burst = 10 })

sms.log.info("quickstart rules loaded", { providers = 1 })
