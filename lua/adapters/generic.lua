-- adapters/generic: the common REST shape most SMS providers follow
-- (PROVIDERS.md §1). One message per request.
--
-- The adapter contract (every adapter; the C core calls it, the adapter does
-- no I/O):
--
--   adapter.batch_size                  messages one request may carry (≥ 1)
--   adapter.build_send(cfg, msgs) → request
--     cfg: the options of sms.provider(name, {...}) plus cfg.name;
--     msgs: array of 1..batch_size messages
--       {id, to (E.164 with '+'), from (or nil: cfg.sender), text, segments,
--        encoding ("gsm7"|"ucs2"), priority (0..3), validity (s), idempotency_key}
--     request: {method="POST", url=..., headers={[name]=value}, body=...}
--   adapter.parse_send(cfg, msgs, response) → outcomes
--     response: {status=200, body="...", headers={["retry-after"]="2", ...}}
--       (header names lower-case; only real HTTP answers, the core handles
--       timeouts and connection errors itself)
--     outcomes: exactly one per message of msgs, in the same order, each one of
--       {ok=true, provider_id="..."}                 accepted; id always a string
--       {ok=false, retry=true, error="...", retry_after=seconds or nil}
--                                                    429, 408, 5xx, 2xx without an id
--       {ok=false, retry=false, scope="provider", error="..."}
--                                                    401, 402, 403, 3xx: next provider
--       {ok=false, retry=false, scope="message", error="..."}
--                                                    other 4xx: the message is refused
--     error: "HTTP <status>" plus ": <provider's error text>" when it gave one,
--     at most ~200 bytes.
--   Misuse (no url, no messages) raises.
--
-- Options: url (the full send endpoint), api_key (sent as
-- "Authorization: Bearer <key>", or under auth_header, e.g. "X-API-Key"),
-- sender (the default "from").
--
-- Request: POST url, {"to":"84912345678","from":"Brand","message":"text"}
-- (E.164 digits without the '+'; "from" left out when there is none), with
-- "Idempotency-Key: <message id>" so a provider that supports it drops the
-- duplicate of a resend; others ignore the header.
-- Answer: the provider id in "message_id", else "id" (string or number).

local util = require("adapters.util")
local json = util.json

local generic = { name = "generic", batch_size = 1 }

function generic.build_send(cfg, msgs)
    local url = util.check_url("generic", cfg)
    util.check_batch("generic", generic.batch_size, msgs)
    local m = msgs[1]
    local from = m.from
    if from == nil or from == "" then from = cfg.sender end
    if from == "" then from = nil end
    local headers = {
        ["Content-Type"] = "application/json",
        ["Accept"] = "application/json",
    }
    local key = m.idempotency_key or m.id
    if key ~= nil and key ~= "" then headers["Idempotency-Key"] = tostring(key) end
    util.auth_headers(cfg, headers)
    return {
        method = "POST",
        url = url,
        headers = headers,
        body = json.encode({ to = (m.to:gsub("^%+", "")), from = from, message = m.text }),
    }
end

function generic.parse_send(cfg, msgs, response)
    local status = response.status
    local body = response.body or ""
    local doc = util.decode(body)
    local outcome
    if util.status_class(status) == "ok" then
        if type(doc) == "table" and (util.inexact(doc.message_id) or util.inexact(doc.id)) then
            doc = util.decode(body, true)
        end
        local id = type(doc) == "table" and (util.id_string(doc.message_id) or util.id_string(doc.id))
        outcome = id and { ok = true, provider_id = id } or util.no_id()
    else
        outcome = util.http_failure(status, doc, body, response.headers)
    end
    -- One request carries one message; should the core ever pass more, the
    -- first gets the outcome and the others are retried (nothing is known
    -- about them), so the count always matches.
    local outcomes = { outcome }
    for i = 2, #msgs do
        outcomes[i] = outcome.ok and util.no_id() or util.failure(
            outcome.retry and "retry" or outcome.scope, outcome.error, response.headers)
    end
    return outcomes
end

return generic
