local bff = require "moonport.bff"
bff.get("/ping", function() return { pong = true } end)
