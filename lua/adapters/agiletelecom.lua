-- adapters/agiletelecom: Agile Telecom's SMS REST API (docs/providers.md, Agile Telecom), in
-- batches of up to 100 messages, with delivery and inbound webhooks.
--
-- The adapter contract (every adapter; the C core calls it, the adapter does
-- no I/O; docs/providers.md, Writing an adapter, has every detail):
--
--   adapter.batch_size, adapter.options
--   adapter.build_send(cfg, msgs) → {method, url, headers, body}
--   adapter.parse_send(cfg, msgs, response) → one outcome per message, in order:
--     {ok=true, provider_id="..."} | {ok=false, retry=true, error, retry_after}
--     | {ok=false, retry=false, scope="provider"|"message", error}
--   adapter.parse_status(cfg, request) → updates, answer
--   adapter.parse_inbound(cfg, request) → messages, answer
--   Misuse (no credentials, no messages) raises. No polling: Agile Telecom
--   documents none for this API; statuses come by webhook only.
--
-- Options:
--   url         base URL, default https://secure.agiletelecom.com/services
--               (accounts opened since the legacy API use
--               https://http-api.agiletelecom.com/services); "/sms/send" is
--               appended.
--   api_key     sent as "X-Api-Key: <key>".
--   user, password  HTTP Basic user:password (instead of api_key).
--   sender      the default "sender" (at most 11 alphanumeric or 16 digits).
--   simulation  true: Agile Telecom checks the request but sends nothing.
--   utc_offset  the zone of the inbound date_time ("20150525154559" carries
--               none and Agile Telecom's docs do not say which it is), and of
--               a delivery timestamp that comes without one, e.g. "+01:00".
--               Default UTC. A fixed offset cannot follow daylight
--               saving time; whatever it is, the same date_time always gives
--               the same time, so deduplication is not affected.
--
-- Send: POST {url}/sms/send,
--   {"enableConcatenated":true,"enableUnicode":true,"enableDelivery":true,
--    "simulation":false,"messages":[{"ids":["<our id>"],"destinations":["+393351234567"],
--    "sender":"Brand","body":"text"}, ...]}
-- One entry per message, one destination each, our message id as its id, so
-- each result and each delivery report names exactly one of our messages.
-- Answer: {"globalId":"...","accepted":true,"results":[{"destination":"+39...",
--   "id":"msg_abc123","accepted":true,"statusCode":200}, ...]}: one result per
-- destination. A result is matched to its message by its id when it is one of
-- ours, else by position when its destination is the message's number, else
-- by the first unused result for that number. Its id is the provider id;
-- when an accepted result carries none, our id (the one sent in "ids", which
-- Agile Telecom uses for the message) is. Per-result statusCode (when
-- accepted is false):
--   400 invalid destination or body              → the message fails
--   401 sender not authorised for the destination → next provider
--   402 insufficient credit                       → next provider
--   403 destination blacklisted or opted out      → the message fails
--   429 throttled on that route, 5xx              → retry
--   any other: read as an HTTP status; none       → the message fails
-- HTTP errors concern the whole request: 401 (credentials), 403 (calling IP
-- not whitelisted), 404 (wrong url for the account type), 413 (batch too
-- large: lower batch_size), 415 → next provider; 408, 429, 5xx → retry (with
-- Retry-After); other 4xx (400 malformed) → the messages fail.
--
-- Delivery webhook (one callback per part of a multipart message):
--   {"channel":"SMS","eventType":"DELIVERY","messageId":"uuid","statusCode":3,
--    "statusDescription":"Delivered","price":0.035,"numPart":1,"totalParts":1,
--    "timestamp":"2024-01-15T10:30:00Z"}
--   statusCode 3 → delivered, 6 → undelivered, any other → unknown; numPart
--   and totalParts → part and parts; price → cost. Other event types are
--   ignored. Answered "+OK".
-- Inbound webhook (dedicated number): form fields originator, destination,
--   date_time (YYYYMMDDHHMMSS), text. Agile Telecom gives no message id:
--   provider_message_id is nil and the core deduplicates by a hash of the
--   message (Agile resends after 15 minutes, up to 3 times, until it reads
--   "+OK"). Answered "+OK", exactly: anything else counts as a failure.

local util = require("adapters.util")
local json = util.json

local DEFAULT_URL = "https://secure.agiletelecom.com/services"

local agiletelecom = {
    name = "agiletelecom",
    -- Agile Telecom documents no limit per request, only that a 413 means
    -- "split the messages array": 100 keeps requests small. Lower it with
    -- batch_size.
    batch_size = 100,
    options = { "user", "password", "simulation", "utc_offset" },
}

-- Per-result submission codes whose meaning Agile Telecom documents.
local CODE_CLASS = { [400] = "message", [401] = "provider", [402] = "provider", [403] = "message", [429] = "retry" }
-- Whole-request HTTP statuses that are about the account or the request
-- shape, not about the messages.
local HTTP_CLASS = { [404] = "provider", [413] = "provider", [415] = "provider" }

local OK_ANSWER = "+OK"

function agiletelecom.build_send(cfg, msgs)
    local base = util.base_url("agiletelecom", cfg, DEFAULT_URL)
    util.check_batch("agiletelecom", agiletelecom.batch_size, msgs)
    local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }
    local kind, a, b = util.credentials("agiletelecom", cfg, true)
    if kind == "key" then
        headers["X-Api-Key"] = a
    else
        headers["Authorization"] = util.basic_auth(a, b)
    end
    if cfg.simulation ~= nil and type(cfg.simulation) ~= "boolean" then
        error("provider " .. tostring(cfg.name) .. " (agiletelecom): simulation must be true or false", 0)
    end
    local list = {}
    for i = 1, #msgs do
        local m = msgs[i]
        local from = m.from
        if from == nil or from == "" then from = cfg.sender end
        if from == "" then from = nil end
        list[i] = {
            ids = m.id ~= nil and { tostring(m.id) } or nil,
            destinations = { m.to },
            sender = from,
            body = m.text,
        }
    end
    return {
        method = "POST",
        url = base .. "/sms/send",
        headers = headers,
        body = json.encode({
            enableConcatenated = true,
            enableUnicode = true,
            enableDelivery = true,
            simulation = cfg.simulation == true,
            messages = list,
        }),
    }
end

-- Digits of a phone number, for matching a result's destination to a
-- message ("+39..." and "0039..." and "39..." alike).
local function number_key(s)
    if type(s) ~= "string" then return nil end
    return (s:gsub("%D", ""):gsub("^00", ""))
end

local function result_outcome(r, ours, headers_)
    if type(r) ~= "table" then return util.no_id() end
    local code = math.tointeger(tonumber(r.statusCode))
    local taken = r.accepted ~= false and (code == nil or (code >= 200 and code <= 299))
    if taken then
        local id = util.id_string(r.id) or ours
        return id and { ok = true, provider_id = id } or util.no_id()
    end
    local class = code and (CODE_CLASS[code] or util.status_class(code)) or "message"
    if class == "ok" then class = "message" end -- refused beside a 2xx code
    local prefix = code and ("status " .. code) or "not accepted"
    return util.failure(class, util.error_message(prefix, util.error_text(r, nil)), headers_)
end

function agiletelecom.parse_send(cfg, msgs, response)
    local body = response.body or ""
    local doc = util.decode(body, true)
    local outcomes = {}
    local class = util.status_class(response.status)
    if class ~= "ok" then
        class = HTTP_CLASS[math.tointeger(response.status)] or class
        local err = util.error_message("HTTP " .. tostring(response.status), util.error_text(doc, body))
        for i = 1, #msgs do outcomes[i] = util.failure(class, err, response.headers) end
        return outcomes
    end
    local results = type(doc) == "table" and doc.results
    if type(results) ~= "table" or #results == 0 then
        -- No per-destination results: a refusal of the whole request when it
        -- says so, else nothing is known about any message.
        for i = 1, #msgs do
            if type(doc) == "table" and doc.accepted == false then
                outcomes[i] = result_outcome(doc, nil, response.headers)
            else
                outcomes[i] = util.no_id()
            end
        end
        return outcomes
    end
    local ours, by_id = {}, {}
    for i = 1, #msgs do
        if msgs[i].id ~= nil then ours[tostring(msgs[i].id)] = i end
    end
    for j, r in ipairs(results) do
        local rid = type(r) == "table" and util.id_string(r.id)
        if rid and ours[rid] and not by_id[rid] then by_id[rid] = j end
    end
    local used = {}
    local function usable(j, i)
        local r = results[j]
        if used[j] or type(r) ~= "table" then return false end
        local rid = util.id_string(r.id)
        if rid and ours[rid] and ours[rid] ~= i then return false end -- another message's
        local dest = number_key(r.destination)
        return dest == nil or dest == number_key(msgs[i].to)
    end
    for i = 1, #msgs do
        local id = msgs[i].id ~= nil and tostring(msgs[i].id) or nil
        local j = id and by_id[id]
        if not j and usable(i, i) then j = i end
        if not j then
            for k = 1, #results do
                if usable(k, i) and type(results[k].destination) == "string" then
                    j = k
                    break
                end
            end
        end
        if j then used[j] = true end
        outcomes[i] = result_outcome(j and results[j], id, response.headers)
    end
    return outcomes
end

local function answer_ok() return util.answer(200, OK_ANSWER) end

function agiletelecom.parse_status(cfg, request)
    local doc, err = util.decode(request.body, true)
    if type(doc) ~= "table" then error("agiletelecom status: body is not JSON: " .. tostring(err), 0) end
    local list = (doc[1] ~= nil or next(doc) == nil) and doc or { doc }
    local offset = util.utc_offset("agiletelecom", cfg)
    local updates = {}
    for _, r in ipairs(list) do
        local id = type(r) == "table" and util.id_string(r.messageId)
        local event = type(r) == "table" and r.eventType
        local code = type(r) == "table" and math.tointeger(tonumber(r.statusCode))
        -- A report without a statusCode says nothing: left out.
        if id and code and (event == nil or event == "DELIVERY") then
            local status = code == 3 and "delivered" or code == 6 and "undelivered" or "unknown"
            local desc = type(r.statusDescription) == "string" and r.statusDescription ~= "" and r.statusDescription or nil
            updates[#updates + 1] = {
                provider_id = id,
                status = status,
                raw_status = tostring(code),
                error = status ~= "delivered" and desc or nil,
                at = util.parse_time(r.timestamp, offset),
                part = util.part_number(r.numPart),
                parts = util.part_number(r.totalParts),
                cost = tonumber(r.price),
            }
        end
    end
    return updates, answer_ok()
end

function agiletelecom.parse_inbound(cfg, request)
    local form = request.form
    if type(form) ~= "table" then
        local more
        form, more = util.form_decode(request.body)
        if more then error("agiletelecom inbound: more than " .. util.MAX_FIELDS .. " form fields", 0) end
    end
    local from = form.originator
    if type(from) ~= "string" or from == "" then
        error("agiletelecom inbound: no originator in the form", 0)
    end
    local to = form.destination
    return {
        {
            provider_message_id = nil,
            from = from,
            to = type(to) == "string" and to or nil,
            text = type(form.text) == "string" and form.text or "",
            at = util.parse_time(form.date_time, util.utc_offset("agiletelecom", cfg)),
        },
    }, answer_ok()
end

return agiletelecom
