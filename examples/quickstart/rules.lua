-- Quickstart rules: what `make run` starts.
-- API key for the send API (override with SMSRULES_API_KEYS).
sms.config{
  listen = "127.0.0.1:8080",
  data = "./data",
  api_keys = { sms.env("SMSRULES_DEMO_KEY") or "demo-key" },
  default_country = "84",
}

sms.log.info("quickstart rules loaded", { default_country = "84" })
