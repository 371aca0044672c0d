#!lua name=tally
-- SPDX-License-Identifier: BSD-3-Clause
-- Merge one partial window of one device into Redis, once. KEYS: window hash, its meta hash
-- (applied partials, times of `last`), the device's latest hash. ARGV: partial id, TTL (s),
-- window start (ms), then per metric: id, count, sum, min, max, last, last time (20-digit ns).
local function merge(keys, args)
  local win, meta, latest = keys[1], keys[2], keys[3]
  local ttl, wstart = args[2], args[3]
  if redis.call('HSETNX', meta, 'applied:' .. args[1], '1') == 0 then
    return 0
  end
  local fields, times = {}, {}
  for i = 4, #args, 7 do
    local m = args[i]
    local c, s = tonumber(args[i + 1]), tonumber(args[i + 2])
    local mn, mx, last, lns = tonumber(args[i + 3]), tonumber(args[i + 4]), args[i + 5], args[i + 6]
    local old = redis.call('HMGET', win, m .. ':count', m .. ':sum', m .. ':min', m .. ':max')
    local ons = redis.call('HGET', meta, 'last_ns:' .. m)
    if old[1] then
      c = c + tonumber(old[1])
      s = s + tonumber(old[2])
      mn = math.min(mn, tonumber(old[3]))
      mx = math.max(mx, tonumber(old[4]))
    end
    fields[#fields + 1] = m .. ':count'
    fields[#fields + 1] = string.format('%d', c)
    fields[#fields + 1] = m .. ':sum'
    fields[#fields + 1] = string.format('%.17g', s)
    fields[#fields + 1] = m .. ':min'
    fields[#fields + 1] = string.format('%.17g', mn)
    fields[#fields + 1] = m .. ':max'
    fields[#fields + 1] = string.format('%.17g', mx)
    -- times are zero-padded decimal strings: string order is time order
    if not ons or lns >= ons then
      fields[#fields + 1] = m .. ':last'
      fields[#fields + 1] = last
      times[#times + 1] = 'last_ns:' .. m
      times[#times + 1] = lns
    end
  end
  redis.call('HSET', win, unpack(fields))
  redis.call('EXPIRE', win, ttl)
  if #times > 0 then
    redis.call('HSET', meta, unpack(times))
  end
  redis.call('EXPIRE', meta, ttl)
  local lw = redis.call('HGET', latest, 'window')
  if not lw or tonumber(wstart) >= tonumber(lw) then
    local cur = {'window', wstart}
    for i = 4, #args, 7 do
      local m = args[i]
      local v = redis.call('HMGET', win, m .. ':count', m .. ':sum', m .. ':min', m .. ':max',
                           m .. ':last')
      cur[#cur + 1] = m .. ':count'
      cur[#cur + 1] = v[1]
      cur[#cur + 1] = m .. ':sum'
      cur[#cur + 1] = v[2]
      cur[#cur + 1] = m .. ':min'
      cur[#cur + 1] = v[3]
      cur[#cur + 1] = m .. ':max'
      cur[#cur + 1] = v[4]
      cur[#cur + 1] = m .. ':last'
      cur[#cur + 1] = v[5]
    end
    redis.call('HSET', latest, unpack(cur))
  end
  redis.call('EXPIRE', latest, ttl)
  return 1
end

redis.register_function('tally_merge', merge)
