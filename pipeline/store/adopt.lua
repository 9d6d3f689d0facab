-- adopt.lua: makes each wanted layout of a view current (store.Adopt).
-- KEYS[1]: the generations hash. ARGV: triples view, fingerprint, mode;
-- mode "keep" (a layout with no history elsewhere), "recompute" (the view
-- had another layout) or "renew" (a new live generation, whatever there was).
-- Returns, per triple, the generation: "<id> <fingerprint> <state>".
local out = {}
for i = 1, #ARGV, 3 do
  local view, fp, mode = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local cur = redis.call("HGET", KEYS[1], view)
  local gen
  if cur and mode ~= "renew" then
    local id, curfp = string.match(cur, "^(%S+) (%S+) ")
    if curfp == fp then gen = cur end
  end
  if not gen and not cur and mode == "keep" then
    gen = fp .. " " .. fp .. " live"
  end
  if not gen then
    local n = redis.call("HINCRBY", KEYS[1], view .. "#n", 1)
    local state = "catching_up"
    if mode == "renew" then state = "live" end
    gen = fp .. "." .. n .. " " .. fp .. " " .. state
  end
  redis.call("HSET", KEYS[1], view, gen)
  out[#out + 1] = gen
end
return out
