-- freshet: write an entity hash if nobody changed it since it was read.
--
-- KEYS[1]: the entity hash.
-- ARGV[1]: the version ("_v") the writer read, '' when the hash had none.
-- ARGV[2]: ttl in ms, 0 for none.
-- ARGV[3]: '' or the tile cutoffs per group, "c0,c1,...[;t]": tiles "<g>:<i>"
--          with i below their group's cutoff are deleted (past retention),
--          and with ";t", remembered ids "_i:<id>" whose event time is
--          below t (past the de-duplication window).
-- ARGV[4..]: field, value pairs to set, the new version among them.
-- Returns 1 when written, 0 when the version changed (read and merge again).
--
-- The offsets, the newest event time and the merged tiles are computed by
-- the client (pipeline/store) from what it read; this check makes the
-- read-merge-write atomic, so two writers of one entity cannot lose an
-- update, and a crash leaves either all of a write or none of it.
local v = redis.call('HGET', KEYS[1], '_v')
if (v or '') ~= ARGV[1] then
  return 0
end
-- In chunks of whole pairs: unpack's results are bounded by the Lua stack
-- (about 8000), and a hot entity can set more fields than that at once
-- (one per remembered id).
for i = 4, #ARGV, 2000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 1999, #ARGV)))
end
if ARGV[3] ~= '' then
  local tiles, idcut = string.match(ARGV[3], '^([^;]*);?(.*)$')
  local cut = {}
  for c in string.gmatch(tiles, '[^,]+') do
    cut[#cut + 1] = tonumber(c)
  end
  idcut = tonumber(idcut)
  local gone = {}
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local f = all[i]
    local g, idx = string.match(f, '^(%d+):(%-?%d+)$')
    if g then
      local c = cut[tonumber(g) + 1]
      if c == nil or tonumber(idx) < c then
        gone[#gone + 1] = f
      end
    elseif idcut and string.sub(f, 1, 3) == '_i:' and tonumber(all[i + 1]) < idcut then
      gone[#gone + 1] = f
    end
  end
  -- In chunks: unpack's arguments are bounded by the Lua stack.
  for i = 1, #gone, 1000 do
    redis.call('HDEL', KEYS[1], unpack(gone, i, math.min(i + 999, #gone)))
  end
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
