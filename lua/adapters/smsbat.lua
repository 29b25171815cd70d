-- adapters/smsbat: SMSBat (restapi.smsbat.com; docs/providers.md, SMSBat), in batches
-- of up to 100 messages, with a status push webhook and polling.
--
-- The adapter contract (every adapter; the C core calls it, the adapter does
-- no I/O; docs/providers.md, Writing an adapter, has every detail):
--
--   adapter.batch_size, adapter.options, adapter.poll_batch
--   adapter.build_send(cfg, msgs) → {method, url, headers, body}
--   adapter.parse_send(cfg, msgs, response) → one outcome per message, in order:
--     {ok=true, provider_id="..."} | {ok=false, retry=true, error, retry_after}
--     | {ok=false, retry=false, scope="provider"|"message", error}
--   adapter.parse_status(cfg, request) → updates, answer
--   adapter.build_poll(cfg, ids) → request; adapter.parse_poll(cfg, ids, response) → updates
--   Misuse (no credentials, no messages) raises.
--
-- Options:
--   url       base URL, default https://restapi.smsbat.com. SMSBat serves
--             each region from its own address (ask the account manager):
--             set it here; the documented paths are appended.
--   api_key   sent as "X-Authorization-Key: <key>"; with auth = "basic" as
--             HTTP Basic with "@" as the user and the key as the password.
--   user, password  HTTP Basic user:password (instead of api_key).
--   auth      "header" (default) or "basic": how the api_key travels.
--   sender    the default "from" (an alphanumeric sender id SMSBat knows).
--
-- Send: POST {url}/bat/messagelist,
--   {"messages":[{"from":"Brand","to":"+380...","type":"sms","text":"...",
--                 "customerMessageId":"<our id>","ttl":3600}, ...]}
-- "to" in E.164 with its '+', as SMSBat documents it; "ttl" is the message's
-- validity in seconds; customerMessageId is our message id, which SMSBat
-- echoes per message so each result is matched to its message.
-- Answer: {"messagelistId":123456,"messages":[{"messageId":"abc123",
--   "status":"accepted|rejected|failed","parts":1,"customerMessageId":"id",...}]}
--   accepted → ok (provider id messageId); rejected → the message fails
--   (SMSBat refused it: number, text, sender); failed → retried. SMSBat does
--   not document what separates "failed" from "rejected"; a message is
--   retried (same customerMessageId) within max_attempts rather than lost on
--   what may be a passing fault on their side.
-- HTTP errors concern the whole request ({"status":400,"error":"Bad Request",
--   "message":"Missing required field: 'messages'","code":1001}): 401/403
--   (bad key, suspended account), 404 (a wrong regional url) and 415 → next
--   provider; 429 and 5xx → retry (with Retry-After); other 4xx (400, 422
--   invalid number) → the messages fail.
--
-- Status push: POST to our /hooks/{provider}/status,
--   {"messageId":"abc123def456","deliverystatus":"delivered",
--    "timestamp":"2025-01-23T10:30:00Z","cost":0.05}
-- (an array of such objects is taken too); answered 200 with an empty body.
-- Polling: GET {url}/bat/message/{messageId}, one id per request (poll_batch
-- 1) → {"messageId":"...","deliverystatus":"delivered","partscount":1,"cost":0.05}.
-- SMSBat asks for polls every 5-10 s at most, backing off, and giving up
-- after 60-120 s: the core's poll schedule decides that.
--
-- Statuses: scheduled → accepted, processing → sent, delivered → delivered,
-- undeliverable → undelivered, permanenterror → undelivered. SMSBat drops a
-- "permanenterror" message from its queue after repeated failures: it was
-- accepted (so not "rejected"), its validity did not run out (so not
-- "expired"), and it never reached the handset: undelivered, final. Any
-- other word is "unknown".

local util = require("adapters.util")
local json = util.json

local DEFAULT_URL = "https://restapi.smsbat.com"

local smsbat = {
    name = "smsbat",
    -- SMSBat documents no limit for one messagelist; 100 keeps one request
    -- (and what one HTTP failure touches) small. Lower it with batch_size.
    batch_size = 100,
    poll_batch = 1,
    options = { "user", "password", "auth" },
}

local STATUS = {
    scheduled = "accepted",
    processing = "sent",
    delivered = "delivered",
    undeliverable = "undelivered",
    permanenterror = "undelivered",
}

-- HTTP statuses whose meaning SMSBat documents differently from the generic
-- reading (util.status_class): a 404 is a wrong (regional) url and a 415 a
-- wrong request shape, not a refused message.
local HTTP_CLASS = { [404] = "provider", [415] = "provider" }

local function headers(cfg)
    local h = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }
    local kind, a, b = util.credentials("smsbat", cfg, true)
    local auth = cfg.auth
    if auth ~= nil and auth ~= "header" and auth ~= "basic" then
        error("provider " .. tostring(cfg.name) .. " (smsbat): auth must be \"header\" or \"basic\"", 0)
    end
    if kind == "basic" then
        h["Authorization"] = util.basic_auth(a, b)
    elseif auth == "basic" then
        -- SMSBat's third way: "@" as the user, the key as the password.
        h["Authorization"] = util.basic_auth("@", a)
    else
        h["X-Authorization-Key"] = a
    end
    return h
end

function smsbat.build_send(cfg, msgs)
    local base = util.base_url("smsbat", cfg, DEFAULT_URL)
    util.check_batch("smsbat", smsbat.batch_size, msgs)
    local list = {}
    for i = 1, #msgs do
        local m = msgs[i]
        local from = m.from
        if from == nil or from == "" then from = cfg.sender end
        if from == "" then from = nil end
        local ttl = math.tointeger(m.validity)
        list[i] = {
            from = from,
            to = m.to,
            type = "sms",
            text = m.text,
            customerMessageId = m.id ~= nil and tostring(m.id) or nil,
            ttl = ttl and ttl > 0 and ttl or nil,
        }
    end
    return {
        method = "POST",
        url = base .. "/bat/messagelist",
        headers = headers(cfg),
        body = json.encode({ messages = list }),
    }
end

-- SMSBat's error text: "message" says what is wrong ("Missing required
-- field: 'messages'"), "error" only the HTTP reason; the internal code last.
local function error_text(doc, body)
    if type(doc) == "table" then
        local text = type(doc.message) == "string" and doc.message ~= "" and doc.message or util.error_text(doc, body)
        local code = util.id_string(doc.code)
        if code then text = (text and text .. " " or "") .. "(code " .. code .. ")" end
        return text
    end
    return util.error_text(doc, body)
end

local function entry_outcome(r, headers_)
    if type(r) ~= "table" then return util.no_id() end
    local status = type(r.status) == "string" and r.status:lower() or nil
    if status == "rejected" or status == "failed" then
        local err = util.error_message(status, error_text(r, nil))
        return util.failure(status == "failed" and "retry" or "message", err, headers_)
    end
    local id = util.id_string(r.messageId)
    if status ~= nil and status ~= "accepted" then
        -- A word SMSBat does not document: the message was not clearly taken.
        return util.failure("retry", util.error_message(status, error_text(r, nil)), headers_)
    end
    return id and { ok = true, provider_id = id } or util.no_id()
end

function smsbat.parse_send(cfg, msgs, response)
    local status = response.status
    local body = response.body or ""
    local doc = util.decode(body, true)
    local outcomes = {}
    local class = util.status_class(status)
    if class ~= "ok" then
        class = HTTP_CLASS[math.tointeger(status)] or class
        local err = util.error_message("HTTP " .. tostring(status), error_text(doc, body))
        for i = 1, #msgs do outcomes[i] = util.failure(class, err, response.headers) end
        return outcomes
    end
    local entries = type(doc) == "table" and doc.messages
    if type(entries) ~= "table" then
        for i = 1, #msgs do outcomes[i] = util.no_id() end
        return outcomes
    end
    -- Entries come in message order and echo customerMessageId: an entry is
    -- used for a message only when its echo, if any, is that message's id.
    local by_id = {}
    for _, r in ipairs(entries) do
        local cid = type(r) == "table" and util.id_string(r.customerMessageId)
        if cid then by_id[cid] = r end
    end
    for i = 1, #msgs do
        local ours = msgs[i].id ~= nil and tostring(msgs[i].id) or nil
        local r = entries[i]
        local cid = type(r) == "table" and util.id_string(r.customerMessageId) or nil
        if cid ~= nil and cid ~= ours then r = nil end
        if r == nil and ours then r = by_id[ours] end
        outcomes[i] = entry_outcome(r, response.headers)
    end
    return outcomes
end

-- One status report (push or poll) as an update, or nil when it names no
-- message or no status. polled_id: the id a poll asked about, which the
-- update is about whatever the answer echoes.
-- SMSBat's partscount says how many parts the whole message had (0 while it
-- does not know yet): informational, never a per-part report.
local function parts_count(v)
    local n = math.tointeger(v)
    return n and n >= 1 and n or nil
end

local function update_of(r, polled_id)
    if type(r) ~= "table" then return nil end
    local id = polled_id or util.id_string(r.messageId)
    local raw = r.deliverystatus
    if type(raw) ~= "string" or raw == "" or not id then return nil end
    local status = STATUS[raw:lower()] or "unknown"
    return {
        provider_id = id,
        status = status,
        raw_status = raw,
        error = (status == "undelivered") and raw or nil,
        at = util.parse_time(r.timestamp, 0),
        parts = parts_count(r.partscount),
        cost = type(r.cost) == "number" and r.cost or tonumber(r.cost),
    }
end

function smsbat.parse_status(cfg, request)
    local doc, err = util.decode(request.body, true)
    if type(doc) ~= "table" then error("smsbat status: body is not a JSON object: " .. tostring(err), 0) end
    local list = doc[1] ~= nil and doc or { doc }
    local updates = {}
    for _, r in ipairs(list) do updates[#updates + 1] = update_of(r) end
    return updates, util.answer(200, "")
end

function smsbat.build_poll(cfg, ids)
    local base = util.base_url("smsbat", cfg, DEFAULT_URL)
    util.check_ids("smsbat", smsbat.poll_batch, ids)
    local h = headers(cfg)
    h["Content-Type"] = nil
    return { method = "GET", url = base .. "/bat/message/" .. util.url_escape(ids[1]), headers = h }
end

-- The update for the polled id; no updates (and the reason) when the answer
-- is an HTTP error or says nothing usable: the core polls again later.
function smsbat.parse_poll(cfg, ids, response)
    local body = response.body or ""
    local doc = util.decode(body, true)
    if util.status_class(response.status) ~= "ok" then
        return {}, util.error_message("HTTP " .. tostring(response.status), error_text(doc, body))
    end
    local u = update_of(doc, ids[1])
    if not u then return {}, "no deliverystatus in answer" end
    return { u }
end

return smsbat
