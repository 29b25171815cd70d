-- adapters/generic: the common REST shape most SMS providers follow
-- (docs/providers.md, generic). One message per request.
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
--   Misuse (no url, no messages, a webhook_secret that is not a string)
--   raises; so does a webhook body that cannot be read (the core answers 400).
--
-- Options: url (the full send endpoint), api_key (sent as
-- "Authorization: Bearer <key>", or under auth_header, e.g. "X-API-Key"),
-- sender (the default "from"), webhook_secret (checks X-Signature on the
-- webhooks; without it verify accepts every request and the core relies on
-- its own secret path or basic auth).
--
-- Request: POST url, {"to":"84912345678","from":"Brand","message":"text"}
-- (as the provider wrote them: the core reads them with the numbering plan; "from" left out when there is none), with
-- "Idempotency-Key: <message id>" so a provider that supports it drops the
-- duplicate of a resend; others ignore the header.
-- Answer: the provider id in "message_id", else "id" (string or number).
--
-- Webhooks: JSON (an object, or an array of objects) or a form
-- (application/x-www-form-urlencoded, or parameters in the query). Every
-- one is answered 200 {"status":"ok"} (application/json).
--   Signature: with webhook_secret, header X-Signature must be the hex
--   HMAC-SHA256 of the raw body keyed by the secret (compared in constant
--   time); missing or wrong → refused (401).
--   Delivery report: id in message_id, msgid or id (numbers beyond 2^53 read
--   exactly); status in status, dlrstatus or stat, an SMPP word or its
--   numeric variant, any case:
--     DELIVRD, delivered, 1 → delivered     UNDELIV, undelivered, 2 → undelivered
--     EXPIRED → expired                     REJECTD, rejected → rejected
--     DELETED → undelivered                 ACCEPTD, accepted → accepted
--     sent, ENROUTE → sent                  UNKNOWN, anything else → unknown
--   (raw_status keeps the word as given); time in done_date or timestamp
--   (RFC 3339, "YYYY-MM-DD HH:MM:SS" read as UTC, or epoch seconds);
--   part / part_number and parts / total_parts; error text in error or err
--   (an all-zero SMPP code, "000", means no error and is left out);
--   client_ref or reference: our message id, when the provider echoes it
--   (passed up as message_id). Entries of an array without an id or a status
--   are skipped; a body with none at all raises.
--   Inbound message: from (or sender, msisdn), to (or recipient), text (or
--   message, body), optional message_id (or msgid, id) and timestamp. Bare
--   international digits (8 to 15) in from and to get their '+'; short codes
--   and sender names stay as given. A message without from or text raises.

local util = require("adapters.util")
local json = util.json

local generic = { name = "generic", batch_size = 1, options = { "webhook_secret" } }

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
    -- The fields in a fixed order (a table's would follow its hash order, which changes from run to
    -- run), so that the body is the same bytes as those of the core's copy of this function in C
    -- (src/rules/adapter_generic.c), which builds it when the options are plain.
    local body = '{"to":' .. json.encode((m.to:gsub("^%+", "")))
    if from ~= nil then body = body .. ',"from":' .. json.encode(from) end
    return {
        method = "POST",
        url = url,
        headers = headers,
        body = body .. ',"message":' .. json.encode(m.text) .. "}",
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

-- ---- webhooks ----

-- The adapter a provider uses, for error messages: generic's webhook
-- functions also serve the mock adapter (adapters/mock.lua).
local function adapter_name(cfg)
    return type(cfg.adapter) == "string" and cfg.adapter or "generic"
end

local function answer_ok()
    return { status = 200, headers = { ["Content-Type"] = "application/json" }, body = '{"status":"ok"}' }
end

-- Hex HMAC-SHA256.
local SIGNATURE_HEX_LEN = 64

function generic.verify(cfg, request)
    local secret = cfg.webhook_secret
    if secret == nil or secret == "" then return true end
    local name = adapter_name(cfg)
    if type(secret) ~= "string" then
        error("provider " .. tostring(cfg.name) .. " (" .. name .. "): webhook_secret must be a string", 0)
    end
    local sig = util.header(request.headers, "x-signature")
    sig = type(sig) == "string" and util.trim(sig) or ""
    if sig == "" then return false, "missing X-Signature" end
    -- Refused by its length before any hashing: an outsider's header costs
    -- nothing but the trim.
    if #sig ~= SIGNATURE_HEX_LEN then return false, "X-Signature is not 64 hex digits" end
    local c = util.crypto(name)
    local body = type(request.body) == "string" and request.body or ""
    -- Hex is compared in lower case: the case of the digits is no secret.
    if not c.equal(c.hex(c.hmac_sha256(secret, body)), sig:lower()) then
        return false, "X-Signature does not match"
    end
    return true
end

-- The records of a webhook body: a JSON object as one record, a JSON array
-- as its elements, a form as one record (the core's request.form when the
-- body is form-encoded, else the body decoded here plus the query's
-- parameters). nil and a reason when the body cannot be read. The query
-- alone does not make the core's form the body: a JSON body posted to a
-- URL with parameters is still JSON.
local function webhook_records(request)
    local body = type(request.body) == "string" and request.body or ""
    local ct = util.header(request.headers, "content-type")
    ct = type(ct) == "string" and ct:lower() or ""
    local is_form = ct:find("application/x-www-form-urlencoded", 1, true) ~= nil
    if ct:find("json", 1, true) or (not is_form and body:match("^%s*[%[{]")) then
        local doc, err = util.decode(body)
        if type(doc) ~= "table" then
            return nil, "body is not a JSON object or array" .. (err and (": " .. err) or "")
        end
        local list = body:match("^%s*%[") and doc or { doc }
        -- Ids beyond 2^53 lost digits as numbers: decode again, exact (they come as their text).
        for _, r in ipairs(list) do
            if type(r) == "table" and (util.inexact(r.message_id) or util.inexact(r.msgid) or util.inexact(r.id)) then
                doc = util.decode(body, true)
                return body:match("^%s*%[") and doc or { doc }
            end
        end
        return list
    end
    local form = request.form
    if not (is_form and type(form) == "table") then
        local fields, more = util.form_decode(body)
        if more then return nil, "more than " .. util.MAX_FIELDS .. " form fields" end
        if type(form) == "table" then
            for k, v in pairs(form) do
                if fields[k] == nil then fields[k] = v end
            end
        end
        form = fields
    end
    if next(form) == nil then return nil, "empty body" end
    return { form }
end

-- A field's value as text: a non-empty string as it is, a number in plain
-- notation (integers without ".0"); nil for anything else (null, objects).
local function text(v)
    if type(v) == "string" then return v ~= "" and v or nil end
    if type(v) == "number" and v == v then return util.id_string(v) or tostring(v) end
    return nil
end

-- The first of the fields names of record r that convert (by as) to a value.
local function first(r, names, as)
    for i = 1, #names do
        local v = r[names[i]]
        if v ~= nil then
            v = as(v)
            if v ~= nil then return v end
        end
    end
    return nil
end

-- Longest epoch seconds read from text: 16 digits (2^53) and a fraction.
local EPOCH_MAX_BYTES = 40

-- Seconds since the epoch of an RFC 3339 time, a "YYYY-MM-DD HH:MM:SS" one
-- (UTC) or epoch seconds (a number or digits); nil otherwise.
local function epoch_seconds(v)
    if type(v) == "string" then
        local at = util.parse_time(v, 0)
        if at then return at end
        -- Trimmed and bounded first: "^%s*(%d+%.?%d*)%s*$" backtracks
        -- quadratically over a long run of digits.
        v = util.trim(v)
        v = #v <= EPOCH_MAX_BYTES and (v:match("^%d+$") or v:match("^%d+%.%d*$")) or nil
        v = v and tonumber(v)
    end
    if type(v) ~= "number" or v ~= v or v <= 0 or v >= 2 ^ 53 then return nil end
    return math.floor(v)
end

local ID_FIELDS = { "message_id", "msgid", "id" }
local STATUS_FIELDS = { "status", "dlrstatus", "stat" }
local TIME_FIELDS = { "done_date", "timestamp" }
local REF_FIELDS = { "client_ref", "reference" }
local ERROR_FIELDS = { "error", "err" }
local PART_FIELDS = { "part", "part_number" }
local PARTS_FIELDS = { "parts", "total_parts" }

-- Delivery report words (SMPP and their spelled-out and numeric variants),
-- lower case → normalised status; any other word is "unknown".
local STATUS = {
    delivrd = "delivered", delivered = "delivered", ["1"] = "delivered",
    undeliv = "undelivered", undelivered = "undelivered", ["2"] = "undelivered",
    expired = "expired",
    rejectd = "rejected", rejected = "rejected",
    -- The SMSC deleted the message (an operator or the sender cancelled it):
    -- it will never reach the handset.
    deleted = "undelivered",
    acceptd = "accepted", accepted = "accepted",
    sent = "sent", enroute = "sent",
    unknown = "unknown",
}

-- The update of one report record, or nil when it has no id or no status.
local function status_update(r)
    if type(r) ~= "table" then return nil end
    local id = first(r, ID_FIELDS, util.id_string)
    local ours = first(r, REF_FIELDS, text)
    local raw = first(r, STATUS_FIELDS, text)
    if not raw or not (id or ours) then return nil end
    local err = first(r, ERROR_FIELDS, text)
    if err and util.trim(err):match("^0+$") then err = nil end
    return {
        provider_id = id,
        message_id = ours,
        status = STATUS[raw:lower()] or "unknown",
        raw_status = raw,
        error = err,
        at = first(r, TIME_FIELDS, epoch_seconds),
        part = first(r, PART_FIELDS, util.part_number),
        parts = first(r, PARTS_FIELDS, util.part_number),
    }
end

function generic.parse_status(cfg, request)
    local list, err = webhook_records(request)
    if not list then error(adapter_name(cfg) .. " status webhook: " .. err, 0) end
    local updates = {}
    for _, r in ipairs(list) do
        updates[#updates + 1] = status_update(r)
    end
    if #list > 0 and #updates == 0 then
        error(adapter_name(cfg) .. " status webhook: no report with an id and a status", 0)
    end
    return updates, answer_ok()
end

-- The message text: a string (empty included) or a number, as text.
local function message_text(v)
    if type(v) == "string" then return v end
    return type(v) == "number" and text(v) or nil
end

local FROM_FIELDS = { "from", "sender", "msisdn" }
local TEXT_FIELDS = { "text", "message", "body" }
local TO_FIELDS = { "to", "recipient" }

function generic.parse_inbound(cfg, request)
    local list, err = webhook_records(request)
    if not list then error(adapter_name(cfg) .. " inbound webhook: " .. err, 0) end
    local messages = {}
    for i, r in ipairs(list) do
        local from = type(r) == "table" and first(r, FROM_FIELDS, text)
        local body = type(r) == "table" and first(r, TEXT_FIELDS, message_text)
        if not from or not body then
            error(adapter_name(cfg) .. " inbound webhook: message " .. i .. " needs from and text", 0)
        end
        messages[i] = {
            provider_message_id = first(r, ID_FIELDS, util.id_string),
            from = from,
            to = first(r, TO_FIELDS, text),
            text = body,
            at = epoch_seconds(r.timestamp),
        }
    end
    return messages, answer_ok()
end

return generic
