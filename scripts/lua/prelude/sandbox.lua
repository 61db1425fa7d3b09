-- The engine's own Lua, compiled into the moonport binary (bff/vm.c runs it
-- once per Lua state with `core`, the C half of the API). It builds:
--   * the sandbox helpers each client environment gets (pcall and xpcall
--     that cannot swallow a CPU or memory kill, and a `require` confined to
--     the client's own modules and scripts/lua/lib);
--   * the `moonport.bff` module scripts use (a fresh table per client, so a
--     client cannot change another client's API).
local core = ...

local raw_pcall, raw_xpcall, select, error, unpack = pcall, xpcall, select, error, unpack
local ipairs, type, pairs, next, rawget, rawset = ipairs, type, pairs, next, rawget, rawset
local killed, load_module, setfenv_ = core.killed, core.load_module, core.setfenv
local is_view, view_pairs, unwrap = core.is_view, core.view_pairs, core.view_unwrap

local function pack(...)
  return { n = select("#", ...), ... }
end

-- A kill must reach the top of the request whatever the script catches.
local function finish(r)
  if not r[1] and killed() then
    error(r[2], 0)
  end
  return unpack(r, 1, r.n)
end

local function safe_pcall(f, ...)
  return finish(pack(raw_pcall(f, ...)))
end

local function safe_xpcall(f, handler, ...)
  return finish(pack(raw_xpcall(f, handler, ...)))
end

-- Calls: c:wait() waits for one call; bff.all waits for a list at once.
local wait_all, result, call_done = core.wait_all, core.result, core.call_methods.done
core.call_methods.wait = function(self)
  if not call_done(self) then -- a call already answered needs no list and no trip through wait_all
    wait_all({ self })
  end
  return result(self)
end

local function all(calls)
  if type(calls) ~= "table" then
    error("bff.all expects a list of calls", 2)
  end
  local failed = wait_all(calls)
  if failed then
    failed:wait() -- a required call failed: raise its error now, without waiting for the others
  end
  local n = #calls
  local out = {}
  for i = 1, n do
    out[i] = calls[i]:wait()
  end
  return unpack(out, 1, n)
end

local function new_bff()
  local bff = {}
  for _, m in ipairs({ "get", "post", "put", "patch", "delete" }) do
    local method = m:upper()
    bff[m] = function(path, opts, fn)
      if fn == nil then
        opts, fn = {}, opts
      end
      return core.route(method, path, opts or {}, fn)
    end
  end
  bff.call = core.call
  bff.all = all
  bff.fetch = function(subject, input, opts)
    return core.call(subject, input, opts):wait()
  end
  bff.fail = core.fail
  bff.response = core.response
  bff.log = core.log
  bff.now_ms = core.now_ms
  bff.json = {}
  for k, v in pairs(core.json) do
    bff.json[k] = v
  end
  return bff
end

-- Replies arrive as lazy JSON views (bff/view.c): userdata that index, #,
-- pairs and ipairs like tables. These stand-ins make the rest of the base
-- library treat them as tables too; a view is materialized (decoded into a
-- real table) only by what needs a real table.
local function view_aware(env)
  env.type = function(v)
    local t = type(v)
    if t == "userdata" and is_view(v) then
      return "table"
    end
    return t
  end
  env.pairs = function(t)
    if type(t) == "userdata" and is_view(t) then
      local it = view_pairs(t)
      if type(it) == "table" then
        return pairs(it)
      end
      return it, t, nil
    end
    return pairs(t)
  end
  env.ipairs = function(t)
    if type(t) == "userdata" and is_view(t) then
      local n = #t
      return function(_, i)
        i = i + 1
        if i <= n then
          local v = t[i]
          if v ~= nil then
            return i, v
          end
        end
      end, t, 0
    end
    return ipairs(t)
  end
  env.next = function(t, k) return next(unwrap(t), k) end
  env.rawget = function(t, k) return rawget(unwrap(t), k) end
  env.rawset = function(t, k, v) return rawset(unwrap(t), k, v) end
  env.unpack = function(t, i, j) return unpack(unwrap(t), i, j) end
  local tbl = env.table
  for _, name in ipairs({ "concat", "insert", "remove", "sort", "maxn" }) do
    local f = tbl[name]
    tbl[name] = function(t, ...) return f(unwrap(t), ...) end
  end
end

local sandbox = {}

function sandbox.make_env(env, client)
  env.pcall, env.xpcall = safe_pcall, safe_xpcall
  view_aware(env)
  local loaded = {}
  env.require = function(name)
    if type(name) ~= "string" then
      error("require expects a module name", 2)
    end
    local mod = loaded[name]
    if mod ~= nil then
      return mod
    end
    if name == "moonport.bff" then
      mod = new_bff()
    elseif name == "moonport.test" and core.test_module then
      mod = core.test_module(client)
    else
      local first = name:match("^([%w_]+)%.")
      if first ~= client and first ~= "lib" then
        error("require '" .. name .. "': a script may load only its own modules (" .. client
          .. ".*), lib.* and moonport.*", 2)
      end
      local chunk, err = load_module(name)
      if not chunk then
        error(err, 2)
      end
      setfenv_(chunk, env)
      mod = chunk(name)
      if mod == nil then
        mod = true
      end
    end
    loaded[name] = mod
    return mod
  end
end

return sandbox
