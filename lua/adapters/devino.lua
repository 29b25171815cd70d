-- adapters/devino: Devino (api.devino.online; docs/providers.md, Devino), in batches
-- of up to 100 messages, with status and inbound push webhooks and polling.
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
--   adapter.parse_inbound(cfg, request) → messages, answer
--   adapter.build_poll(cfg, ids) → request; adapter.parse_poll(cfg, ids, response) → updates
--   Misuse (no api_key, no messages, too many ids) raises.
--
-- Options:
--   url           base URL, default https://api.devino.online; the
--                 documented paths are appended.
--   api_key       required; sent as "Authorization: Key <key>".
--   sender        the default "from" (at most 11 latin characters or 15
--                 digits, registered with Devino).
--   callback_url  sent as each message's callbackUrl: where Devino pushes its
--                 statuses (our public /hooks/{provider}/status). Without it
--                 Devino uses the address set in its account, if any.
--   shorten_url   true: ask Devino to shorten links (?shortenUrl=true); a
--                 followed link then reports CLICKED.
--   priority_words  true: send the priority as LOW, MEDIUM, HIGH, REALTIME
--                 (for 0..3), as a newer revision of Devino's API documents;
--                 by default the number 0..3 (docs/providers.md, Devino).
--   utc_offset    the zone of the statusDateTime of polled statuses
--                 ("2020-11-11 11:20:35" carries none and Devino's docs do
--                 not say which it is): e.g. "+03:00". Default UTC.
--   poll_id_strings  true: send polled ids as JSON strings. Devino documents
--                 "a JSON array of ids" without an example; since it reports
--                 them as JSON numbers (smsId), they go by default as numbers,
--                 their digits written as they are (never through a double).
--
-- Send: POST {url}/sms/messages,
--   {"messages":[{"from":"MyCompany","to":"79034567890","text":"Code: 1234",
--                 "validity":3600,"priority":0,"callbackUrl":"https://..."}, ...]}
-- "to" is the E.164 number's digits (Devino's own example has no '+').
-- "validity" is the message's validity in seconds within Devino's 1..259200
-- (longer ones are cut to 259200, the core expires the message past its own
-- validity anyway; none leaves Devino's default of 172800). "priority" is the
-- message's 0 (low, Devino's default) .. 3 (highest): the same scale as ours.
-- Answer, one result per message in order:
--   {"result":[{"code":"OK","messageId":"3482512350952730368"},
--              {"code":"REJECTED","reasons":[{"key":"not.available","ref":"messages[1].from"}],
--               "description":"..."}]}
-- Rejection keys (several reasons: the message's own fault wins over the
-- provider's, which wins over a passing one):
--   billing.error (payment required)            → next provider
--   forbidden                                   → next provider
--   not.available (.from: sender not registered) → next provider
--   unknown                                     → retry
--   too.many.messages                           → retry
--   invalid (.to, .validity, .callbackUrl)      → the message fails
--   length.too.long (.to, .text)                → the message fails
--   must.be.not.null                            → the message fails
--   any other key                               → the message fails: Devino
--     refused it, sending the same again would not change that; the error
--     names the key.
-- HTTP errors concern the whole request: 401/403 (and 402, 3xx, 404 a wrong
-- url) → next provider; 429 and 5xx → retry (with Retry-After); other 4xx →
-- the messages fail, unless the body's "reasons" say otherwise (a 400 with
-- too.many.messages is retried, billing.error goes to the next provider).
--
-- Status push: POST callbackUrl with a JSON array
--   [{"messageId":"3597944866766620289","ts":1613404835977,"status":"DELIVERED","errorCode":0}]
-- (ids may come as JSON numbers beyond 2^53: read exactly, as strings).
-- Devino expects 200 (on a 500 it retries 5 times, a minute apart): answered
-- 200 with an empty body.
-- Inbound push: {"incomingMessageId":"3777714415805253122","to":"MyCompany",
--   "from":"79101111111","text":"...","ts":"1587721283000",...}; "from" gets
--   its '+'; answered 200.
-- Polling: POST {url}/sms-stat/statuses/get-by-ids with a JSON array of at
-- most 500 ids (poll_batch 500) → {"result":[{"smsId":3482512350952730368,
--   "status":"DELIVERED","statusDateTime":"2020-11-11 11:20:35"}]}.
--
-- Statuses: ACCEPTED, SCHEDULED → accepted; ENROUTE, SENT → sent; DELIVERED,
-- CLICKED (a link in a delivered message was followed) → delivered; EXPIRED
-- → expired; UNDELIVERABLE → undelivered; REJECTED → rejected; UNKNOWN and
-- any other word → unknown.

local util = require("adapters.util")
local json = util.json

local DEFAULT_URL = "https://api.devino.online"
local MAX_VALIDITY_S = 259200
local POLL_MAX_IDS = 500

local devino = {
    name = "devino",
    -- Devino takes up to 32 000 messages per request; 100 keeps one request
    -- (and what one HTTP failure touches) small. Lower it with batch_size.
    batch_size = 100,
    poll_batch = POLL_MAX_IDS,
    options = { "callback_url", "shorten_url", "priority_words", "utc_offset", "poll_id_strings" },
}

local STATUS = {
    ACCEPTED = "accepted",
    SCHEDULED = "accepted",
    ENROUTE = "sent",
    SENT = "sent",
    DELIVERED = "delivered",
    CLICKED = "delivered",
    EXPIRED = "expired",
    UNDELIVERABLE = "undelivered",
    REJECTED = "rejected",
    UNKNOWN = "unknown",
}

local KEY_CLASS = {
    ["billing.error"] = "provider",
    ["forbidden"] = "provider",
    ["not.available"] = "provider",
    ["unknown"] = "retry",
    ["too.many.messages"] = "retry",
    ["invalid"] = "message",
    ["length.too.long"] = "message",
    ["must.be.not.null"] = "message",
}
local CLASS_RANK = { retry = 1, provider = 2, message = 3 }

local PRIORITY_WORDS = { [0] = "LOW", [1] = "MEDIUM", [2] = "HIGH", [3] = "REALTIME" }

-- A 404 means a wrong url, not a refused message.
local HTTP_CLASS = { [404] = "provider" }

local function headers(cfg)
    local _, key = util.credentials("devino", cfg, false)
    return {
        ["Content-Type"] = "application/json",
        ["Accept"] = "application/json",
        ["Authorization"] = "Key " .. key,
    }
end

function devino.build_send(cfg, msgs)
    local base = util.base_url("devino", cfg, DEFAULT_URL)
    util.check_batch("devino", devino.batch_size, msgs)
    local callback = cfg.callback_url
    if callback ~= nil and (type(callback) ~= "string" or not callback:match("^[hH][tT][tT][pP][sS]?://[^%s]+$")) then
        error("provider " .. tostring(cfg.name) .. " (devino): callback_url must be an http(s) URL", 0)
    end
    local list = {}
    for i = 1, #msgs do
        local m = msgs[i]
        local from = m.from
        if from == nil or from == "" then from = cfg.sender end
        if from == "" then from = nil end
        local validity = math.tointeger(m.validity)
        if validity and validity < 1 then validity = nil end
        if validity and validity > MAX_VALIDITY_S then validity = MAX_VALIDITY_S end
        local priority = math.tointeger(m.priority)
        if priority then priority = math.max(0, math.min(3, priority)) end
        if priority and cfg.priority_words == true then priority = PRIORITY_WORDS[priority] end
        list[i] = {
            from = from,
            to = (m.to:gsub("^%+", "")),
            text = m.text,
            validity = validity,
            priority = priority,
            callbackUrl = callback,
        }
    end
    return {
        method = "POST",
        url = base .. "/sms/messages" .. (cfg.shorten_url == true and "?shortenUrl=true" or ""),
        headers = headers(cfg),
        body = json.encode({ messages = list }),
    }
end

-- The class of a list of rejection reasons (nil when there are none) and
-- their text: "not.available (messages[0].from), invalid (messages[0].to)".
local function reasons_of(reasons)
    if type(reasons) ~= "table" then return nil, nil end
    local class, parts = nil, {}
    for _, r in ipairs(reasons) do
        if type(r) == "table" and type(r.key) == "string" then
            local c = KEY_CLASS[r.key] or "message"
            if not class or CLASS_RANK[c] > CLASS_RANK[class] then class = c end
            parts[#parts + 1] = r.key .. (type(r.ref) == "string" and " (" .. r.ref .. ")" or "")
        end
    end
    return class, #parts > 0 and table.concat(parts, ", ") or nil
end

local function describe(reason_text, doc, body)
    local desc = util.error_text(doc, body)
    if reason_text and desc then return reason_text .. ": " .. desc end
    return reason_text or desc
end

local function result_outcome(r, headers_)
    if type(r) ~= "table" then return util.no_id() end
    if r.code == "OK" then
        local id = util.id_string(r.messageId)
        return id and { ok = true, provider_id = id } or util.no_id()
    end
    local class, text = reasons_of(r.reasons)
    local word = type(r.code) == "string" and r.code ~= "" and r.code or "REJECTED"
    return util.failure(class or "message", util.error_message(word, describe(text, r, nil)), headers_)
end

function devino.parse_send(cfg, msgs, response)
    local body = response.body or ""
    local doc = util.decode(body, true)
    local outcomes = {}
    local class = util.status_class(response.status)
    if class ~= "ok" then
        class = HTTP_CLASS[math.tointeger(response.status)] or class
        local by_reason, text = reasons_of(type(doc) == "table" and doc.reasons)
        if class == "message" and by_reason then class = by_reason end
        local err = util.error_message("HTTP " .. tostring(response.status), describe(text, doc, body))
        for i = 1, #msgs do outcomes[i] = util.failure(class, err, response.headers) end
        return outcomes
    end
    -- Devino answers one result per message, in order, echoing nothing of
    -- ours: results are matched by position; missing ones are retried.
    local results = type(doc) == "table" and doc.result
    if type(results) ~= "table" then results = {} end
    for i = 1, #msgs do outcomes[i] = result_outcome(results[i], response.headers) end
    return outcomes
end

local function status_of(raw)
    if type(raw) ~= "string" or raw == "" then return nil end
    return STATUS[raw:upper()] or "unknown"
end

-- A JSON body (exact: big ids as strings) that must be an object or an
-- array; raises otherwise, so the core answers 400.
local function decode_webhook(what, body)
    local doc, err = util.decode(body, true)
    if type(doc) ~= "table" then error("devino " .. what .. ": body is not JSON: " .. tostring(err or body), 0) end
    return doc
end

function devino.parse_status(cfg, request)
    local doc = decode_webhook("status", request.body)
    local list = (doc[1] ~= nil or next(doc) == nil) and doc or { doc }
    local updates = {}
    for _, r in ipairs(list) do
        local id = type(r) == "table" and util.id_string(r.messageId)
        local status = type(r) == "table" and status_of(r.status)
        if id and status then
            local code = math.tointeger(tonumber(r.errorCode))
            updates[#updates + 1] = {
                provider_id = id,
                status = status,
                raw_status = r.status,
                error = code and code ~= 0 and "error code " .. code or nil,
                at = util.epoch_ms(r.ts),
            }
        end
    end
    return updates, util.answer(200, "")
end

function devino.parse_inbound(cfg, request)
    local doc = decode_webhook("inbound", request.body)
    local list = doc[1] ~= nil and doc or { doc }
    local messages = {}
    for _, r in ipairs(list) do
        if type(r) == "table" and type(r.from) == "string" and r.from ~= "" then
            messages[#messages + 1] = {
                provider_message_id = util.id_string(r.incomingMessageId),
                from = r.from,
                to = type(r.to) == "string" and r.to or util.id_string(r.to),
                text = type(r.text) == "string" and r.text or "",
                at = util.epoch_ms(r.ts),
            }
        end
    end
    return messages, util.answer(200, "")
end

function devino.build_poll(cfg, ids)
    local base = util.base_url("devino", cfg, DEFAULT_URL)
    util.check_ids("devino", POLL_MAX_IDS, ids)
    local parts = {}
    for i = 1, #ids do
        -- Digits are written as a JSON number as they are: no double ever
        -- holds them, so ids beyond 2^53 stay exact.
        if cfg.poll_id_strings ~= true and ids[i]:match("^%d+$") and #ids[i] <= 19 then
            parts[i] = ids[i]
        else
            parts[i] = json.encode(ids[i])
        end
    end
    return {
        method = "POST",
        url = base .. "/sms-stat/statuses/get-by-ids",
        headers = headers(cfg),
        body = "[" .. table.concat(parts, ",") .. "]",
    }
end

-- The updates of a poll answer; no updates (and the reason) on an HTTP error:
-- the core polls again later.
function devino.parse_poll(cfg, ids, response)
    local body = response.body or ""
    local doc = util.decode(body, true)
    if util.status_class(response.status) ~= "ok" then
        return {}, util.error_message("HTTP " .. tostring(response.status), util.error_text(doc, body))
    end
    local offset = util.utc_offset("devino", cfg)
    local results = type(doc) == "table" and type(doc.result) == "table" and doc.result or {}
    local updates = {}
    for _, r in ipairs(results) do
        local id = type(r) == "table" and util.id_string(r.smsId)
        local status = type(r) == "table" and status_of(r.status)
        if id and status then
            updates[#updates + 1] = {
                provider_id = id,
                status = status,
                raw_status = r.status,
                at = util.parse_time(r.statusDateTime, offset),
            }
        end
    end
    return updates
end

return devino
