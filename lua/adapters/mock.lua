-- adapters/mock: speaks to `smsrules mock-provider`, in batches of up to 100.
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
--   adapter.verify(cfg, request) → true | false, "reason"
--   adapter.parse_status(cfg, request) → updates, answer
--   adapter.parse_inbound(cfg, request) → messages, answer
--     (docs/providers.md, Writing an adapter, has the request, updates and messages)
--   Misuse (no url, no messages) raises; so does a webhook body that cannot
--   be read (the core answers 400).
--
-- Options: url (the mock's send endpoint, "http://127.0.0.1:9090/send"),
-- api_key (optional; Bearer, or under auth_header), sender, webhook_secret
-- (checks X-Signature on the webhooks, as the generic adapter does).
--
-- Request: POST url,
--   {"messages":[{"to":"+84912345678","from":"Brand","message":"text","id":"<message id>"}, ...]}
-- The "id" is our idempotency key: the mock answers a resend with the
-- message_id it gave the first time.
-- Answer, 2xx: {"results":[r1, r2, ...]}, one per message in order, each
--   {"message_id":"m1","status":"accepted","id":"<ours>"} or
--   {"status":"rejected","error":"invalid number","id":"<ours>"} (also
--   {"error":"...","status":400}: a numeric status is mapped like an HTTP one;
--   a rejection without one is permanent for that message).
--   A single message may also be answered in the plain form {"message_id":"m1"}.
-- Any other status concerns the whole request: every message of the batch
-- gets the same outcome (401 → next provider, 429/503 → retry, with
-- Retry-After; 400 {"error":...} → refused).
--
-- Webhooks: the mock speaks the generic REST shape (docs/providers.md, generic), so
-- verify, parse_status and parse_inbound are the generic adapter's (see
-- adapters/generic.lua for every field and status word they read).
--   Delivery report (--dlr-url): POST {"message_id":"m1","status":"DELIVRD"|"UNDELIV",
--     "to":"+84912345678","timestamp":"2026-11-23T10:00:00Z"} (with "part" and
--     "parts" for one part of a multipart message).
--   Inbound message: POST {"message_id":"...","from":"+84912345678",
--     "to":"+84900000000","text":"...","timestamp":"2026-11-23T10:00:00Z"}.
--   Both are answered 200 {"status":"ok"}. With webhook_secret, X-Signature
--   must be the hex HMAC-SHA256 of the raw body keyed by it.

local util = require("adapters.util")
local generic = require("adapters.generic")
local json = util.json

local mock = { name = "mock", batch_size = 100, options = { "webhook_secret" } }

function mock.build_send(cfg, msgs)
    local url = util.check_url("mock", cfg)
    util.check_batch("mock", mock.batch_size, msgs)
    local list = {}
    for i = 1, #msgs do
        local m = msgs[i]
        local from = m.from
        if from == nil or from == "" then from = cfg.sender end
        if from == "" then from = nil end
        local id = m.idempotency_key or m.id
        list[i] = { to = m.to, from = from, message = m.text, id = id ~= nil and tostring(id) or nil }
    end
    local headers = {
        ["Content-Type"] = "application/json",
        ["Accept"] = "application/json",
    }
    util.auth_headers(cfg, headers)
    return { method = "POST", url = url, headers = headers, body = json.encode({ messages = list }) }
end

-- The outcome of one entry of "results". headers: the response's, for a
-- per-result 429/503 that wants a Retry-After.
local REFUSED = { rejected = true, failed = true, error = true }

local function result_outcome(r, headers)
    if type(r) ~= "table" then return util.no_id() end
    local err = r.error
    if err == util.null then err = nil end
    local code = math.tointeger(r.status)
    local class = code and util.status_class(code)
    if err ~= nil or (class and class ~= "ok") or REFUSED[r.status] then
        local text = util.error_text(r, nil)
        if code then
            -- An error beside a 2xx status: refused all the same.
            if class == "ok" then class = "message" end
            return util.failure(class, util.error_message("status " .. code, text), headers)
        end
        local word = type(r.status) == "string" and r.status ~= "" and r.status or "rejected"
        return util.failure("message", util.error_message(word, text))
    end
    local id = util.id_string(r.message_id)
    return id and { ok = true, provider_id = id } or util.no_id()
end

function mock.parse_send(cfg, msgs, response)
    local status = response.status
    local body = response.body or ""
    local doc = util.decode(body)
    local outcomes = {}
    if util.status_class(status) ~= "ok" then
        for i = 1, #msgs do outcomes[i] = util.http_failure(status, doc, body, response.headers) end
        return outcomes
    end
    if type(doc) == "table" then
        local list = type(doc.results) == "table" and doc.results or { doc }
        for _, r in ipairs(list) do
            if type(r) == "table" and util.inexact(r.message_id) then
                doc = util.decode(body, true)
                break
            end
        end
    end
    local results = type(doc) == "table" and doc.results
    if type(results) == "table" then
        -- Results are in message order, and the mock echoes our id in them:
        -- an entry is used for a message only when its id, if any, is that
        -- message's, so a result is never credited to the wrong message. The
        -- results by id are looked up (and so gathered) only when the order
        -- does not match.
        local by_id
        local function find(id)
            if by_id == nil then
                by_id = {}
                for _, r in ipairs(results) do
                    if type(r) == "table" and type(r.id) == "string" then by_id[r.id] = r end
                end
            end
            return by_id[id]
        end
        for i = 1, #msgs do
            local ours = msgs[i].idempotency_key or msgs[i].id
            ours = ours ~= nil and tostring(ours) or nil
            local r = results[i]
            local rid = type(r) == "table" and type(r.id) == "string" and r.id or nil
            if rid ~= nil and rid ~= ours then r = ours and find(ours) or nil end
            if r == nil and ours then r = find(ours) end
            outcomes[i] = result_outcome(r, response.headers)
        end
        return outcomes
    end
    -- The plain form answers one message only; for more we cannot tell which.
    if #msgs == 1 and type(doc) == "table" then
        outcomes[1] = result_outcome(doc, response.headers)
        return outcomes
    end
    for i = 1, #msgs do outcomes[i] = util.no_id() end
    return outcomes
end

-- ---- webhooks: the generic adapter's ----

function mock.verify(cfg, request) return generic.verify(cfg, request) end

function mock.parse_status(cfg, request) return generic.parse_status(cfg, request) end

function mock.parse_inbound(cfg, request) return generic.parse_inbound(cfg, request) end

return mock
