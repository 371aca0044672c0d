#!lua name=tally2
-- SPDX-License-Identifier: BSD-3-Clause
-- Schema v2: merge one partial window of several devices into Redis, each device once.
-- KEYS: per device, its window hash and its latest key (a string: the newest window's start).
-- ARGV: TTL (s), window start (ms), applied field (`_applied:<partial id>`), then per device:
-- chunk k, n, and n arguments: per metric the field/value pairs m:count c m:sum s m:min mn
-- m:max mx m:last l m:ts t (t: time of `last`, 20-digit ns, so string order is time order).
-- Returns one reply per device: 1 merged, 0 already applied, or an error (that device only).
-- Every read and check comes before the first write of a device: Redis does not roll a
-- failed script back, so a device either merges whole and is marked applied, or not at all.

local function num(key, field, v)
  local x = tonumber(v)
  if x == nil then
    error('tally: ' .. key .. ' field ' .. field .. ' is not a number: ' .. tostring(v), 0)
  end
  return x
end

-- The window key already holds something: fold the partial into what is there.
local function fold(win, applied, args, first, last)
  local names = {}
  for i = first, last, 12 do
    names[#names + 1] = args[i]
    names[#names + 1] = args[i + 2]
    names[#names + 1] = args[i + 4]
    names[#names + 1] = args[i + 6]
    names[#names + 1] = args[i + 10]
  end
  local old = redis.call('HMGET', win, unpack(names))
  local f = {applied, '1'}
  local k = 1
  for i = first, last, 12 do
    local oc = old[k]
    if oc then
      f[#f + 1] = args[i]
      f[#f + 1] = string.format('%d', num(win, args[i], oc) + tonumber(args[i + 1]))
      f[#f + 1] = args[i + 2]
      f[#f + 1] = string.format('%.17g', num(win, args[i + 2], old[k + 1]) +
                                tonumber(args[i + 3]))
      -- min and max are one of the two strings as they are: no reformatting
      if tonumber(args[i + 5]) < num(win, args[i + 4], old[k + 2]) then
        f[#f + 1] = args[i + 4]
        f[#f + 1] = args[i + 5]
      end
      if tonumber(args[i + 7]) > num(win, args[i + 6], old[k + 3]) then
        f[#f + 1] = args[i + 6]
        f[#f + 1] = args[i + 7]
      end
      if not old[k + 4] or args[i + 11] >= old[k + 4] then
        for j = i + 8, i + 11 do
          f[#f + 1] = args[j]
        end
      end
    else
      for j = i, i + 11 do
        f[#f + 1] = args[j]
      end
    end
    k = k + 5
  end
  return f
end

-- latest := the window start, unless it already names a newer window; one SET for both.
-- A schema v1 latest (a hash of fields, tally's own) is replaced by the v2 pointer.
local function point_latest(latest, ttl, wstart)
  local ok, old = pcall(redis.call, 'SET', latest, wstart, 'EX', ttl, 'GET')
  if not ok then
    if redis.call('TYPE', latest).ok ~= 'hash' then
      error(old)
    end
    redis.call('DEL', latest)
    old = redis.call('SET', latest, wstart, 'EX', ttl, 'GET')
  end
  local o = old and tonumber(old)
  if o and o > tonumber(wstart) then
    -- a replay of an older window: latest keeps the newer one
    redis.call('SET', latest, old, 'KEEPTTL')
  end
end

-- One device: checks and reads first, then the writes. Raises on a refused key.
local function device(win, latest, ttl, wstart, applied, args, first, last)
  local n = redis.call('HLEN', win)
  local f
  if n > 0 then
    if redis.call('HEXISTS', win, applied) == 1 then
      return 0
    end
    f = fold(win, applied, args, first, last)
  end
  -- the only write that can be refused (latest of the wrong type) comes first
  point_latest(latest, ttl, wstart)
  if n == 0 then
    redis.call('HSET', win, applied, '1', unpack(args, first, last))
  else
    redis.call('HSET', win, unpack(f))
  end
  redis.call('EXPIRE', win, ttl)
  return 1
end

local function merge(keys, args)
  local ttl, wstart, applied = args[1], args[2], args[3]
  local res = {}
  local a = 4
  for d = 1, #keys, 2 do
    local chunk, n = args[a], tonumber(args[a + 1])
    local id = applied
    if chunk ~= '0' then
      id = applied .. ':' .. chunk
    end
    local ok, r = pcall(device, keys[d], keys[d + 1], ttl, wstart, id, args, a + 2, a + 1 + n)
    if ok then
      res[#res + 1] = r
    else
      if type(r) == 'table' then
        r = r.err
      end
      res[#res + 1] = redis.error_reply(tostring(r))
    end
    a = a + 2 + n
  end
  return res
end

redis.register_function('tally_merge2', merge)
