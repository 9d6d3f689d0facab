-- freshet: apply tile updates to entity hashes, effectively once.
--
-- KEYS: entity hashes of one feature view (in Redis Cluster, all in one slot).
-- ARGV[1]: the view's layout, "hop,keep,ops;hop,keep,ops;..." one entry per
--          tile group, ops being the merge program of a packed tile
--          (a add, v m2, n min, x max, t last time, l last value).
-- ARGV[2]: ttl in ms, 0 for none.
-- Then for each key in KEYS order: the number of units, and per unit
--   source ("topic/partition"), first offset, last offset, newest event time,
--   number of tiles, and per tile: group, index, packed accumulators.
--
-- A unit is the coalesced events of one entity from one source partition.
-- The hash keeps per source the last offset applied ("_o:" .. source), so:
--   last offset applied >= unit's last   -> already applied, skipped (1)
--   last offset applied >= unit's first  -> straddles, nothing applied (2);
--                                           the client resends it per event
--   otherwise                            -> applied (0)
-- Returns one status per unit, in order.
--
-- Hash fields: "_e" newest event time applied; "_o:<source>" offsets;
-- "_l:<group>" lowest tile index present; "<group>:<index>" packed tiles.
-- The merge formulas mirror aggregate.Acc.Merge; change both together.

local SEP = '\31'

local function split(s)
  local t, n, pos = {}, 0, 1
  while true do
    local i = string.find(s, SEP, pos, true)
    n = n + 1
    if not i then
      t[n] = string.sub(s, pos)
      return t
    end
    t[n] = string.sub(s, pos, i - 1)
    pos = i + 1
  end
end

local function num(x)
  return string.format('%.17g', x)
end

-- Byte-wise a > b: Lua's own comparison follows the server's locale.
local function greater(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x > y
    end
  end
  return #a > #b
end

local A, V, N, X, T = string.byte('a'), string.byte('v'), string.byte('n'), string.byte('x'), string.byte('t')

local function merge(ops, old, new)
  local a, d, r = split(old), split(new), {}
  local i, n = 1, #ops
  while i <= n do
    local op = string.byte(ops, i)
    if op == A then
      r[i] = num(tonumber(a[i]) + tonumber(d[i]))
    elseif op == V then
      local na, sa, nb, sb = tonumber(a[i - 2]), tonumber(a[i - 1]), tonumber(d[i - 2]), tonumber(d[i - 1])
      if nb == 0 then
        r[i] = a[i]
      elseif na == 0 then
        r[i] = d[i]
      else
        local delta = sb / nb - sa / na
        r[i] = num(tonumber(a[i]) + tonumber(d[i]) + delta * delta * na * nb / (na + nb))
      end
    elseif op == N or op == X then
      if a[i] == '' then
        r[i] = d[i]
      elseif d[i] == '' then
        r[i] = a[i]
      else
        local x, y = tonumber(a[i]), tonumber(d[i])
        if (op == N and y < x) or (op == X and y > x) then
          r[i] = d[i]
        else
          r[i] = a[i]
        end
      end
    elseif op == T then
      local take = false
      if a[i] == '' then
        take = true
      elseif d[i] ~= '' then
        local ta, td = tonumber(a[i]), tonumber(d[i])
        take = td > ta or (td == ta and greater(d[i + 1], a[i + 1]))
      end
      if take then
        r[i], r[i + 1] = d[i], d[i + 1]
      else
        r[i], r[i + 1] = a[i], a[i + 1]
      end
      i = i + 1
    end
    i = i + 1
  end
  return table.concat(r, SEP)
end

local groups = {}
for hop, keep, ops in string.gmatch(ARGV[1], '(%d+),(%d+),(%a+)') do
  groups[#groups + 1] = { hop = tonumber(hop), keep = tonumber(keep), ops = ops }
end
local ttl = tonumber(ARGV[2])

local out = {}
local pos = 3
for k = 1, #KEYS do
  local key = KEYS[k]
  local nunits = tonumber(ARGV[pos])
  pos = pos + 1

  -- Read every field the key's units need in one HMGET: its newest event
  -- time, each group's lowest tile, each unit's offset and every tile.
  local names, seen = { '_e' }, { _e = true }
  local function want(f)
    if not seen[f] then
      seen[f] = true
      names[#names + 1] = f
    end
  end
  for g = 0, #groups - 1 do
    want('_l:' .. g)
  end
  local p = pos
  for _ = 1, nunits do
    want('_o:' .. ARGV[p])
    local ntiles = tonumber(ARGV[p + 4])
    p = p + 5
    for _ = 1, ntiles do
      want(ARGV[p] .. ':' .. ARGV[p + 1])
      p = p + 3
    end
  end
  local got = redis.call('HMGET', key, unpack(names))
  local cur = {}
  for i, f in ipairs(names) do
    if got[i] then
      cur[f] = got[i]
    end
  end

  local dirty, ndirty = {}, 0
  local function set(f, v)
    if not dirty[f] then
      dirty[f] = true
      ndirty = ndirty + 1
      dirty[ndirty] = f
    end
    cur[f] = v
  end

  local newest = tonumber(cur['_e'])
  local touched = false
  for _ = 1, nunits do
    local src, first, last, maxt, ntiles =
      ARGV[pos], tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2]), tonumber(ARGV[pos + 3]), tonumber(ARGV[pos + 4])
    pos = pos + 5
    local done = tonumber(cur['_o:' .. src]) or -1
    if done >= last then
      out[#out + 1] = 1
      pos = pos + 3 * ntiles
    elseif done >= first then
      out[#out + 1] = 2
      pos = pos + 3 * ntiles
    else
      if newest == nil or maxt > newest then
        newest = maxt
      end
      for _ = 1, ntiles do
        local g, idx, packed = tonumber(ARGV[pos]), tonumber(ARGV[pos + 1]), ARGV[pos + 2]
        local grp = groups[g + 1]
        -- Tiles older than the retention before the newest event are
        -- never read exactly again: don't write them.
        if idx >= math.floor(newest / grp.hop) - grp.keep then
          local field = ARGV[pos] .. ':' .. ARGV[pos + 1]
          local old = cur[field]
          if old then
            packed = merge(grp.ops, old, packed)
          end
          set(field, packed)
          local lf = '_l:' .. g
          local lo = tonumber(cur[lf])
          if lo == nil or idx < lo then
            set(lf, idx)
          end
        end
        pos = pos + 3
      end
      set('_o:' .. src, last)
      touched = true
      out[#out + 1] = 0
    end
  end

  if touched then
    set('_e', num(newest))
    -- Drop tiles past the retention, in one sweep once the oldest is a
    -- quarter of the retention behind, so the sweep's cost is amortized.
    local sweep = false
    for g, grp in ipairs(groups) do
      local lo = tonumber(cur['_l:' .. (g - 1)])
      local cutoff = math.floor(newest / grp.hop) - grp.keep
      if lo ~= nil and lo < cutoff - math.max(1, math.floor(grp.keep / 4)) then
        sweep = true
      end
    end
    if sweep then
      local fresh, gone = {}, {}
      for _, f in ipairs(redis.call('HKEYS', key)) do
        local g, idx = string.match(f, '^(%d+):(%-?%d+)$')
        if g then
          g, idx = tonumber(g), tonumber(idx)
          local grp = groups[g + 1]
          if grp == nil or idx < math.floor(newest / grp.hop) - grp.keep then
            gone[#gone + 1] = f
          elseif fresh[g] == nil or idx < fresh[g] then
            fresh[g] = idx
          end
        end
      end
      if #gone > 0 then
        redis.call('HDEL', key, unpack(gone))
      end
      for g = 0, #groups - 1 do
        if fresh[g] == nil then
          cur['_l:' .. g] = nil
          dirty['_l:' .. g] = nil
          redis.call('HDEL', key, '_l:' .. g)
        else
          set('_l:' .. g, fresh[g])
        end
      end
    end
    local args, n = {}, 0
    for i = 1, ndirty do
      local f = dirty[i]
      if dirty[f] then
        args[n + 1], args[n + 2] = f, cur[f]
        n = n + 2
      end
    end
    if n > 0 then
      redis.call('HSET', key, unpack(args))
    end
    if ttl > 0 then
      redis.call('PEXPIRE', key, ttl)
    end
  end
end
return out
