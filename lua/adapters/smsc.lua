-- adapters/smsc: SMSC (smsc.ru and its regional twins smsc.kz, smscentre.com;
-- docs/providers.md, SMSC). One message per request; delivery statuses by polling.
--
-- The adapter contract (every adapter; the C core calls it, the adapter does
-- no I/O; docs/providers.md, Writing an adapter, has it all):
--
--   adapter.batch_size                  messages one request may carry (≥ 1)
--   adapter.options                     options beyond the common ones
--   adapter.build_send(cfg, msgs) → request {method, url, headers, body}
--   adapter.parse_send(cfg, msgs, response) → one outcome per message:
--       {ok=true, provider_id="...", parts=n}
--       {ok=false, retry=true, error="...", retry_after=seconds or nil}
--       {ok=false, retry=false, scope="provider"|"message", error="..."}
--   adapter.poll_batch                  ids one status request may carry
--   adapter.build_poll(cfg, ids) → request
--   adapter.parse_poll(cfg, ids, response) → updates
--   Misuse (no or contradictory credentials, ids that are not ours) raises.
--
-- Options: login + password, or api_key (SMSC's "apikey", instead of the
-- pair); sender (the default Sender ID; SMSC's account default when none);
-- url (the base, default https://smsc.ru; https://smsc.kz for Kazakhstan);
-- send_id (default true): whether our message id goes out as SMSC's "id".
-- SMSC's documentation describes that id as a 32-bit number (1..2147483647)
-- in its older libraries and also as a string of up to 40 characters
-- (letters, digits, ".-_") in the newer API pages; our ids are 26-character
-- ULIDs. Should an account refuse them (error 1 on every send), set
-- send_id = false and SMSC numbers the messages itself.
--
-- Send: POST {url}/sys/send.php, form login/psw or apikey, phones (the
-- number with its '+', which turns SMSC's automatic number "correction"
-- off), mes, sender, id, charset=utf-8, fmt=3 (JSON answers).
-- Answer (HTTP 200 also for refusals): {"id":123,"cnt":1} (cnt: SMS parts),
-- or {"error":"...","error_code":N} classed by ERROR_CLASS below.
-- The provider id is "<SMSC id>:<phone digits>" ("123:79991234567"): SMSC
-- finds a message's status by id and phone together, and build_poll gets
-- nothing but provider ids.
--
-- Statuses: POST {url}/sys/status.php with id and phone as comma-separated
-- lists in the same order (a trailing comma keeps the list form for one
-- message, so the answer is always a list), fmt=3:
--   [{"status":1,"last_date":"28.12.2019 19:20:22","last_timestamp":1577550022,"err":0}, ...]
-- SMSC can also push statuses to a handler URL set in the account
-- ("Передача статусов и сообщений на обработчик Клиента"), but the fields of
-- that push were not available to us, so this adapter polls and has no
-- parse_status; inbound SMS (rented numbers) are left out for the same
-- reason.

local util = require("adapters.util")

local smsc = {
    name = "smsc",
    batch_size = 1,
    -- SMSC documents the lists of a status request without a maximum; 20
    -- keeps each request small.
    poll_batch = 20,
    options = { "login", "password", "send_id" },
}

local DEFAULT_URL = "https://smsc.ru"

-- Send error codes (SMSC "Ответ сервера и коды ошибок").
local ERROR_CLASS = {
    [1] = "message",  -- error in the parameters
    [2] = "provider", -- wrong login or password (or api key)
    [3] = "provider", -- not enough money on the account
    [4] = "provider", -- our IP is blocked for a while after too many errors
    [5] = "message",  -- wrong date format
    [6] = "message",  -- message forbidden (text or sender name)
    [7] = "message",  -- wrong phone number format
    [8] = "message",  -- the message cannot be delivered to this number
    [9] = "retry",    -- too many identical requests, or too many at once
}

-- Status codes (SMSC "Статусы сообщений. Коды статусов") → normalised status.
-- 22 invalid number, 23 forbidden and 24 not enough money are refusals by
-- SMSC itself (the message never reached an operator): rejected; 20 and 25
-- are an operator failing to deliver it: undelivered. -3 (not found) and -2
-- (a stopped mailing) say nothing final.
local STATUS = {
    [-3] = { "unknown", "message not found" },
    [-2] = { "unknown", "stopped" },
    [-1] = { "accepted", "waiting to be sent" },
    [0] = { "sent", "handed to the operator" },
    [1] = { "delivered", "delivered" },
    [2] = { "delivered", "read" },
    [3] = { "expired", "expired" },
    [4] = { "delivered", "link clicked" },
    [20] = { "undelivered", "cannot be delivered" },
    [22] = { "rejected", "invalid number" },
    [23] = { "rejected", "forbidden" },
    [24] = { "rejected", "not enough money" },
    [25] = { "undelivered", "number unavailable" },
}

local function fail(cfg, what)
    error("provider " .. tostring(cfg.name) .. " (smsc): " .. what, 0)
end

local function nonempty(v)
    return type(v) == "string" and v ~= "" and v or nil
end

-- The ASCII digits of s: "+84 912" → "84912".
local function digits(s)
    return (tostring(s):gsub("[^0-9]", ""))
end

-- The credentials as form fields, first in every request.
local function auth_fields(cfg)
    local key, login, password = nonempty(cfg.api_key), nonempty(cfg.login), nonempty(cfg.password)
    if key then
        if login or password then fail(cfg, "give api_key or login + password, not both") end
        return { { "apikey", key } }
    end
    if not (login and password) then fail(cfg, "needs login + password or api_key") end
    return { { "login", login }, { "psw", password } }
end

local function form_request(url, fields)
    return {
        method = "POST",
        url = url,
        headers = {
            ["Content-Type"] = "application/x-www-form-urlencoded",
            ["Accept"] = "application/json",
        },
        body = util.form_encode(fields),
    }
end

function smsc.build_send(cfg, msgs)
    util.check_batch("smsc", smsc.batch_size, msgs)
    local fields = auth_fields(cfg)
    local url = util.base_url("smsc", cfg, DEFAULT_URL) .. "/sys/send.php"
    local m = msgs[1]
    local id = nil
    if cfg.send_id ~= false and m.id ~= nil then
        id = tostring(m.id)
        if not id:match("^[A-Za-z0-9%.%-_]+$") or #id > 40 then id = nil end
    end
    local phone = m.to:match("^%+") and m.to or ("+" .. digits(m.to))
    for _, f in ipairs({
        { "phones", phone },
        { "mes", m.text },
        { "sender", nonempty(m.from) or nonempty(cfg.sender) },
        { "id", id },
        { "charset", "utf-8" },
        { "fmt", "3" },
    }) do
        fields[#fields + 1] = f
    end
    return form_request(url, fields)
end

local function send_outcome(msg, response)
    local status = response.status
    local body = response.body or ""
    local doc = util.decode(body)
    if util.status_class(status) ~= "ok" then return util.http_failure(status, doc, body, response.headers) end
    if type(doc) ~= "table" then return util.no_id() end
    local code = doc.error_code ~= nil and math.tointeger(tonumber(doc.error_code))
    if code or doc.error ~= nil then
        local class = code and ERROR_CLASS[code] or "message"
        local text = type(doc.error) == "string" and doc.error or nil
        return util.failure(class, util.error_message("SMSC error " .. tostring(code or "?"), text), response.headers)
    end
    if util.inexact(doc.id) then doc = util.decode(body, true) end
    local id = util.id_string(doc.id)
    if not id then return util.no_id() end
    local outcome = { ok = true, provider_id = id .. ":" .. digits(msg.to) }
    local parts = doc.cnt ~= nil and math.tointeger(tonumber(doc.cnt))
    if parts and parts >= 1 then outcome.parts = parts end
    return outcome
end

function smsc.parse_send(cfg, msgs, response)
    local outcome = send_outcome(msgs[1], response)
    local outcomes = { outcome }
    for i = 2, #msgs do
        outcomes[i] = outcome.ok and util.no_id() or util.failure(
            outcome.retry and "retry" or outcome.scope, outcome.error, response.headers)
    end
    return outcomes
end

-- ---- polling ----

-- The SMSC id and phone of each provider id we gave ("123:79991234567").
local function split_ids(ids)
    local list = {}
    for i, pid in ipairs(ids) do
        local id, phone = pid:match("^(.+):(%d+)$")
        if not id then error("smsc adapter: provider id " .. i .. " is not '<id>:<phone>'", 0) end
        list[i] = { pid = pid, id = id, phone = phone }
    end
    return list
end

function smsc.build_poll(cfg, ids)
    util.check_ids("smsc", smsc.poll_batch, ids)
    local list = split_ids(ids)
    local fields = auth_fields(cfg)
    local id_list, phone_list = {}, {}
    for i, e in ipairs(list) do
        id_list[i], phone_list[i] = e.id, e.phone
    end
    local tail = #list == 1 and "," or ""
    fields[#fields + 1] = { "phone", table.concat(phone_list, ",") .. tail }
    fields[#fields + 1] = { "id", table.concat(id_list, ",") .. tail }
    fields[#fields + 1] = { "charset", "utf-8" }
    fields[#fields + 1] = { "fmt", "3" }
    return form_request(util.base_url("smsc", cfg, DEFAULT_URL) .. "/sys/status.php", fields)
end

local function status_update(pid, e)
    local code = math.tointeger(tonumber(e.status))
    if not code then return nil end
    local known = STATUS[code]
    local update = {
        provider_id = pid,
        status = known and known[1] or "unknown",
        raw_status = string.format("%d", code),
        at = math.tointeger(tonumber(e.last_timestamp)),
    }
    local err = math.tointeger(tonumber(e.err))
    -- An error text for the failures, and to explain states that are
    -- neither progress nor an end (-3, -2, codes we do not know).
    if code <= -2 or code >= 20 or not known or (err and err ~= 0) then
        local text = known and known[2] or nil
        if err and err ~= 0 then text = (text and (text .. ", ") or "") .. "err " .. err end
        update.error = util.error_message("status " .. code, text)
    end
    return update
end

-- Raises on an error answer (the core logs it and polls again later).
function smsc.parse_poll(cfg, ids, response)
    local list = split_ids(ids)
    local body = response.body or ""
    local doc, err = util.decode(body, true)
    if util.status_class(response.status) ~= "ok" then
        error("smsc status request: " .. util.http_failure(response.status, doc, body, response.headers).error, 0)
    end
    if type(doc) ~= "table" then error("smsc status request: answer is not JSON: " .. tostring(err), 0) end
    if doc.error_code ~= nil or doc.error ~= nil then
        local code = math.tointeger(tonumber(doc.error_code))
        error("smsc status request: " .. util.error_message("SMSC error " .. (code and tostring(code) or "?"),
            type(doc.error) == "string" and doc.error or nil), 0)
    end
    local entries = #doc > 0 and doc or { doc }
    -- Entries come in the order asked; when one names its id and phone, it
    -- is matched by them instead, so a status is never given to another
    -- message.
    local by_key = {}
    for _, e in ipairs(entries) do
        if type(e) == "table" and e.id ~= nil and e.phone ~= nil then
            local id = util.id_string(e.id) or tostring(e.id)
            by_key[id .. ":" .. digits(e.phone)] = e
        end
    end
    local updates = {}
    for i, m in ipairs(list) do
        local e = by_key[m.id .. ":" .. m.phone]
        if e == nil then
            e = entries[i]
            if type(e) == "table" and e.id ~= nil and e.phone ~= nil then e = nil end
        end
        local update = type(e) == "table" and status_update(m.pid, e)
        if update then updates[#updates + 1] = update end
    end
    return updates
end

return smsc
