-- A module of the lab client (loaded with require "lab.util").
local M = {}

-- Everything a script must not reach. Returns the names of the attempts that worked (none should).
function M.escape_attempts()
  local attempts = {
    io = function() return io.open end,
    os_execute = function() return os.execute end,
    os_exit = function() return os.exit end,
    os_getenv = function() return os.getenv end,
    loadstring = function() return loadstring("return 1") end,
    load = function() return load end,
    dofile = function() return dofile end,
    loadfile = function() return loadfile end,
    require_os = function() return require("os") end,
    require_io = function() return require("io") end,
    require_ffi = function() return require("ffi") end,
    require_parent = function() return require("lab....secret") end,
    require_other = function() return require("other.mod") end,
    getfenv = function() return getfenv(0) end,
    setfenv = function() return setfenv end,
    debug = function() return debug.getinfo end,
    jit = function() return jit.off end,
    string_metatable = function() return getmetatable("").__index end,
    collectgarbage = function() return collectgarbage end,
    coroutine = function() return coroutine.create end,
    newproxy = function() return newproxy end,
    package = function() return package.loaded end,
    module = function() return module end,
    new_global = function() leaked = true return leaked end, -- luacheck: ignore
    string_upper_shared = function() string.upper = nil return ("x"):upper() == nil end,
  }
  local got = {}
  for name, f in pairs(attempts) do
    local ok, v = pcall(f)
    if ok and v ~= nil and v ~= false then
      got[#got + 1] = name
    end
  end
  table.sort(got)
  return got
end

return M
