#!lua name=tally2
-- SPDX-License-Identifier: BSD-3-Clause
-- Schema v2: merge one partial window of several devices into Redis, each device once.
-- KEYS: per device, its window hash and its latest key (a string: the newest window's start).
-- ARGV: TTL (s), window start (ms), applied field (`_applied:<partial id>`), then per device:
-- chunk k, n, and n arguments: per metric the field/value pairs of its kind, e.g. m:count c
-- m:sum s m:min mn m:max mx m:last l m:ts t (t: time of `last`, 20-digit ns, so string
-- order is time order), or for a histogram m:count m:sum m:min m:max m:sketch; m is the
-- decimal metric id, or a statsd series' text (`api.latency{env:prod}`: the suffix is what
-- follows the last ':').
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

-- The text of an error a pcall caught: a table ({err = ...}) from redis.call, else a string.
local function err_text(r)
  if type(r) == 'table' then
    return tostring(r.err)
  end
  return tostring(r)
end

-- A sketch (lib/sketch/tally_ddsketch.h, version 1): 'D' 'S' 1 0, then LEB128 varints:
-- zero, clamped, folded, the bucket count B, and B pairs: the first key zigzag-encoded, each
-- later one as the gap to the previous minus one, then the count minus one. Counts stay below
-- 2^53, where Lua's numbers are exact.
local function bad_sketch(key, field)
  error('tally: ' .. key .. ' field ' .. field .. ' is not a sketch', 0)
end

local function uvarint(s, p, key, field)
  local v, mul = 0, 1
  while true do
    local b = string.byte(s, p)
    if b == nil or mul > 2 ^ 49 then
      bad_sketch(key, field)
    end
    v = v + (b % 128) * mul
    p = p + 1
    if b < 128 then
      return v, p
    end
    mul = mul * 128
  end
end

local function sketch_read(s, key, field)
  if string.sub(s, 1, 4) ~= 'DS\1\0' then
    bad_sketch(key, field)
  end
  local h, keys, counts, p, k = {}, {}, {}, 5, 0
  for i = 1, 4 do
    h[i], p = uvarint(s, p, key, field)
  end
  for b = 1, h[4] do
    local v, c
    v, p = uvarint(s, p, key, field)
    if b == 1 then
      if v % 2 == 0 then k = v / 2 else k = -(v + 1) / 2 end
    else
      k = k + v + 1
    end
    c, p = uvarint(s, p, key, field)
    keys[b], counts[b] = k, c + 1
  end
  if p ~= #s + 1 then
    bad_sketch(key, field)
  end
  return h, keys, counts
end

local function uvarint_put(out, v)
  repeat
    local b = v % 128
    v = (v - b) / 128
    if v > 0 then b = b + 128 end
    out[#out + 1] = string.char(b)
  until v == 0
end

-- Buckets add key by key (exact: the sink's sketches share one fixed bucket layout).
local function sketch_merge(key, field, a, b)
  local ha, ka, ca = sketch_read(a, key, field)
  local hb, kb, cb = sketch_read(b, key, field)
  local keys, counts, i, j = {}, {}, 1, 1
  while i <= #ka or j <= #kb do
    if j > #kb or (i <= #ka and ka[i] < kb[j]) then
      keys[#keys + 1], counts[#counts + 1], i = ka[i], ca[i], i + 1
    elseif i > #ka or kb[j] < ka[i] then
      keys[#keys + 1], counts[#counts + 1], j = kb[j], cb[j], j + 1
    else
      keys[#keys + 1], counts[#counts + 1] = ka[i], ca[i] + cb[j]
      i, j = i + 1, j + 1
    end
  end
  local out = {'DS\1\0'}
  for x = 1, 3 do
    uvarint_put(out, ha[x] + hb[x])
  end
  uvarint_put(out, #keys)
  for x = 1, #keys do
    if x == 1 then
      if keys[1] >= 0 then uvarint_put(out, keys[1] * 2) else uvarint_put(out, -keys[1] * 2 - 1) end
    else
      uvarint_put(out, keys[x] - keys[x - 1] - 1)
    end
    uvarint_put(out, counts[x] - 1)
  end
  return table.concat(out)
end

-- The window key already holds something: fold the partial (field/value pairs of the
-- fields of each metric's kind, lib/table/tally_aggregate.h) into what is there, field by
-- field by its rule: count and sum add, min and max keep the smaller / larger text, last
-- and ts are taken when ts is not older, sketch buckets add; a field not stored is taken.
local function fold(win, applied, args, first, last)
  local names = {}
  for i = first, last, 2 do
    names[#names + 1] = args[i]
  end
  local old = redis.call('HMGET', win, unpack(names))
  local newer = {}
  for i = first, last, 2 do
    local m, sfx = string.match(args[i], '^(.+):(%a+)$')
    local o = old[(i - first) / 2 + 1]
    if sfx == 'ts' then
      newer[m] = not o or args[i + 1] >= o
    end
  end
  local f = {applied, '1'}
  for i = first, last, 2 do
    local field, v = args[i], args[i + 1]
    local m, sfx = string.match(field, '^(.+):(%a+)$')
    local o = old[(i - first) / 2 + 1]
    local put = v
    if o then
      if sfx == 'count' then
        put = string.format('%d', num(win, field, o) + tonumber(v))
      elseif sfx == 'sum' or sfx == 'rate' then
        -- a rate is the sum per second of the window: the parts' rates add up to it
        put = string.format('%.17g', num(win, field, o) + tonumber(v))
      elseif sfx == 'min' then
        if not (tonumber(v) < num(win, field, o)) then put = nil end
      elseif sfx == 'max' then
        if not (tonumber(v) > num(win, field, o)) then put = nil end
      elseif sfx == 'last' or sfx == 'ts' then
        if newer[m] == false then put = nil end
      elseif sfx == 'sketch' then
        put = sketch_merge(win, field, o, v)
      end
    end
    if put then
      f[#f + 1] = field
      f[#f + 1] = put
    end
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
      res[#res + 1] = redis.error_reply(err_text(r))
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
  return redis.error_reply('NORESTORE ' .. err_text(r))
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
        res[#res + 1] = redis.error_reply(err_text(r))
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

-- KEYS: a scratch key, then the distinct-count keys of one device (one slot). ARGV: TTL (s),
-- then per key its registers as a Redis HLL string: SET when the key is new, else PFMERGE'd
-- in through the scratch key. PFMERGE takes the register-wise max, so the same registers
-- merged twice change nothing: no applied mark is needed. One reply per key: 1, or an error
-- for that key alone (WRONGTYPE: not an HLL).
local function pf(keys, args)
  local tmp, ttl = keys[1], args[1]
  local res = {}
  for i = 2, #keys do
    local ok, r = pcall(function()
      if redis.call('EXISTS', keys[i]) == 0 then
        -- a new key takes the registers as they are (the sink writes valid HLL strings)
        redis.call('SET', keys[i], args[i], 'EX', ttl)
        return
      end
      redis.call('SET', tmp, args[i], 'PX', 60000)
      redis.call('PFMERGE', keys[i], tmp)
      redis.call('EXPIRE', keys[i], ttl)
    end)
    if ok then
      res[#res + 1] = 1
    else
      res[#res + 1] = redis.error_reply(err_text(r))
    end
  end
  redis.call('DEL', tmp)
  return res
end

redis.register_function('tally_merge2', merge)
redis.register_function('tally_put2', put)
redis.register_function('tally_swap2', swap)
redis.register_function('tally_pf2', pf)
