-- freshet: save partition watermarks, never moving one to an earlier offset.
-- KEYS[1]: the marks hash of a group and topic. ARGV: partition,
-- "offset:time" pairs.
for i = 1, #ARGV, 2 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  local keep = false
  if old then
    local o = tonumber(string.match(old, '^(%-?%d+):'))
    local n = tonumber(string.match(ARGV[i + 1], '^(%-?%d+):'))
    keep = o ~= nil and n ~= nil and o > n
  end
  if not keep then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
