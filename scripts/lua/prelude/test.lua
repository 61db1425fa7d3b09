-- `moonport.test`: what a BFF script's *_test.lua files use to test routes
-- offline (`moonport bff test`), with service replies given as fixtures.
-- Compiled into the binary; `tcore` is the C half (bff/cmd_test.c).
local core, tcore = ...

local json = core.json
local pairs, ipairs, type, tostring, error, pcall = pairs, ipairs, type, tostring, error, pcall
local unwrap = core.view_unwrap -- replies are lazy views: compare their decoded tables
local concat, format = table.concat, string.format

-- "body.items[2].id" style paths for messages
local function show(v)
  if type(v) == "string" then
    return format("%q", v)
  end
  return tostring(v)
end

local function diff(a, b, path)
  a, b = unwrap(a), unwrap(b)
  if type(a) ~= type(b) then
    return format("%s: expected %s (%s), got %s (%s)", path, show(b), type(b), show(a), type(a))
  end
  if type(a) ~= "table" then
    if a ~= b then
      return format("%s: expected %s, got %s", path, show(b), show(a))
    end
    return nil
  end
  for k, bv in pairs(b) do
    local p = type(k) == "number" and format("%s[%d]", path, k) or (path .. "." .. tostring(k))
    local d = diff(a[k], bv, p)
    if d then
      return d
    end
  end
  for k, av in pairs(a) do
    if b[k] == nil then
      local p = type(k) == "number" and format("%s[%d]", path, k) or (path .. "." .. tostring(k))
      return format("%s: unexpected %s", p, show(av))
    end
  end
  return nil
end

return function(client)
  local t = {}
  local cases = {}

  function t.case(name, fn)
    if type(name) ~= "string" or type(fn) ~= "function" then
      error("t.case(name, function() ... end)", 2)
    end
    cases[#cases + 1] = { name = name, fn = fn }
  end

  -- fixtures: what a service answers in this case
  function t.reply(subject, value, opts)
    opts = opts or {}
    tcore.fixture(subject, {
      kind = "reply",
      body = value == nil and "" or json.encode(value),
      status = opts.status or 200,
      delay_ms = opts.delay_ms or 0,
      once = opts.once or false,
    })
  end

  function t.fail(subject, kind, opts)
    opts = opts or {}
    if kind == "timeout" or kind == "unavailable" then
      tcore.fixture(subject, { kind = kind, delay_ms = opts.delay_ms or 0, once = opts.once or false })
    elseif type(kind) == "number" and kind >= 400 then
      local body = opts.body or { type = "about:blank", status = kind, detail = opts.detail or "fixture failure" }
      tcore.fixture(subject, { kind = "reply", status = kind, body = json.encode(body),
        delay_ms = opts.delay_ms or 0, once = opts.once or false })
    else
      error('t.fail(subject, "timeout" | "unavailable" | <4xx/5xx status>)', 2)
    end
  end

  function t.file(path)
    local text = tcore.read_file(client, path)
    local v, err = json.decode(text)
    if v == nil and err then
      error(path .. ": not valid JSON: " .. err, 2)
    end
    return v
  end

  local function request(method, path, body, opts)
    opts = opts or {}
    return tcore.request(client, method, path, body, opts)
  end
  function t.get(path, opts) return request("GET", path, nil, opts) end
  function t.delete(path, opts) return request("DELETE", path, nil, opts) end
  function t.post(path, body, opts) return request("POST", path, body, opts) end
  function t.put(path, body, opts) return request("PUT", path, body, opts) end
  function t.patch(path, body, opts) return request("PATCH", path, body, opts) end

  -- what the last request sent to services: { {subject=, input=, headers=}, ... }
  function t.calls()
    return tcore.calls()
  end

  -- the last request's calls were all in flight at the same time
  function t.calls_overlapped()
    local n, most = #tcore.calls(), tcore.max_in_flight()
    if n > 1 and most < n then
      error(format("only %d of the %d calls were in flight at once: they ran one after another", most, n), 2)
    end
  end

  function t.eq(actual, expected, what)
    local d = diff(actual, expected, what or "value")
    if d then
      error(d, 2)
    end
  end

  function t.ok(v, what)
    if not v then
      error(what or "expected a true value", 2)
    end
    return v
  end

  -- run by the runner after the file loaded: every case, each with fresh fixtures
  function t.__run(file)
    local passed, failed = 0, 0
    for _, c in ipairs(cases) do
      tcore.reset()
      local ok, err = pcall(c.fn)
      local missing = tcore.missing()
      if ok and #missing > 0 then
        ok, err = false, "no fixture for " .. concat(missing, ", ") .. " (add t.reply(...) or t.fail(...))"
      end
      tcore.report(file, c.name, ok, err)
      if ok then passed = passed + 1 else failed = failed + 1 end
    end
    return passed, failed
  end

  return t
end
