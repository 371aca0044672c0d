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
--
-- tally_put2 and tally_swap2 are the fast path: the sink builds each window key whole as a
-- DUMP payload (the fields and the applied mark) and Redis RESTOREs it, so no field passes
-- through Lua. put2 writes keys that do not exist yet; for one that does, the sink reads it
-- (HGETALL), folds in its partial itself and swap2 replaces the key if it has not changed
-- since (its field count: every write adds an applied mark, none removes a field).
-- tally_merge2 stays for a Redis that refuses RESTORE (an ACL without it).

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

-- RESTORE, or an error reply NORESTORE naming why (the sink then writes with tally_merge2).
local function restore(win, ttl, payload, replace)
  local ok, r
  if replace then
    ok, r = pcall(redis.call, 'RESTORE', win, ttl * 1000, payload, 'REPLACE')
  else
    ok, r = pcall(redis.call, 'RESTORE', win, ttl * 1000, payload)
  end
  if ok then
    return 1
  end
  if type(r) == 'table' then
    r = r.err
  end
  return redis.error_reply('NORESTORE ' .. tostring(r))
end

-- KEYS: per device, its window hash and its latest key. ARGV: TTL (s), window start (ms),
-- then per device the DUMP payload of its window key. One reply per device: 1 written,
-- 2 the key exists (the sink folds into it), an error (that device only: WRONGTYPE when
-- the key is not a hash).
local function put(keys, args)
  local ttl, wstart = args[1], args[2]
  local res = {}
  for d = 1, #keys, 2 do
    local win = keys[d]
    local t = redis.call('TYPE', win).ok
    if t == 'hash' then
      res[#res + 1] = 2
    elseif t ~= 'none' then
      res[#res + 1] = redis.error_reply('WRONGTYPE ' .. win .. ' holds a ' .. t .. ', not a hash')
    else
      local ok, r = pcall(point_latest, keys[d + 1], ttl, wstart)
      if ok then
        res[#res + 1] = restore(win, ttl, args[2 + (d + 1) / 2], false)
      else
        if type(r) == 'table' then
          r = r.err
        end
        res[#res + 1] = redis.error_reply(tostring(r))
      end
    end
  end
  return res
end

-- KEYS: one device's window hash and latest key. ARGV: TTL, window start, applied field,
-- the field count the key had when the sink read it, the payload of the folded key.
-- 1 replaced, 0 already applied, 2 changed since it was read (read it again).
local function swap(keys, args)
  local win = keys[1]
  if redis.call('HEXISTS', win, args[3]) == 1 then
    return 0
  end
  if redis.call('HLEN', win) ~= tonumber(args[4]) then
    return 2
  end
  point_latest(keys[2], args[1], args[2])
  return restore(win, args[1], args[5], true)
end

redis.register_function('tally_merge2', merge)
redis.register_function('tally_put2', put)
redis.register_function('tally_swap2', swap)
