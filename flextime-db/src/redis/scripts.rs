//! The Lua scripts that make Redis writes and feed reads atomic.

/// ARGV: now (µs), ops as JSON `[{rk, fk, ck, id, e, d?}]` where `e` is
/// `"any"`, `"absent"` or a version and `d` the JSON text (absent for a
/// delete). Returns `[[version, seq], ...]` or the error `CONFLICT <i> <found>`.
pub(crate) const WRITE: &str = r"
local now = tonumber(ARGV[1])
local ops = cjson.decode(ARGV[2])
local state = {}
local versions = {}
for i, op in ipairs(ops) do
  local st = state[op.rk]
  if st == nil then
    local v = redis.call('HGET', op.rk, 'v')
    if v then st = { tonumber(v), redis.call('HEXISTS', op.rk, 'x') == 1 } else st = false end
  end
  local e = op.e
  local ok = true
  if e == 'absent' then
    ok = (not st) or st[2]
  elseif type(e) == 'number' then
    ok = (st and st[1] == e) or false
  end
  if not ok then
    local found = 'no record'
    if st then
      if st[2] then found = 'a tombstone at version ' .. st[1] else found = 'version ' .. st[1] end
    end
    return redis.error_reply('CONFLICT ' .. i .. ' ' .. found)
  end
  local nv = 1
  if st then nv = st[1] + 1 end
  versions[i] = nv
  state[op.rk] = { nv, op.d == nil }
end
local out = {}
for i, op in ipairs(ops) do
  local seq = redis.call('INCR', op.ck)
  redis.call('HSET', op.rk, 'v', versions[i], 's', seq, 'u', now)
  if op.d == nil then
    redis.call('HDEL', op.rk, 'd')
    redis.call('HSET', op.rk, 'x', now)
  else
    redis.call('HSET', op.rk, 'd', op.d)
    redis.call('HDEL', op.rk, 'x')
  end
  redis.call('ZADD', op.fk, seq, op.id)
  out[i] = { versions[i], seq }
end
return out
";

/// ARGV: feed key, record key prefix, after, limit. Returns
/// `[[id, v, s, d|nil, u, x|nil], ...]` in seq order.
pub(crate) const CHANGES: &str = r"
local ids = redis.call('ZRANGEBYSCORE', ARGV[1], '(' .. ARGV[3], '+inf', 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for i, id in ipairs(ids) do
  local h = redis.call('HMGET', ARGV[2] .. id, 'v', 's', 'd', 'u', 'x')
  local x = false
  if h[5] then x = tonumber(h[5]) end
  out[i] = { id, tonumber(h[1]), tonumber(h[2]), h[3], tonumber(h[4]), x }
end
return out
";

/// ARGV: feed key, record key prefix, up to. Deletes tombstones; returns how many.
pub(crate) const PURGE: &str = r"
local ids = redis.call('ZRANGEBYSCORE', ARGV[1], '-inf', ARGV[3], 'LIMIT', 0, 10000)
local n = 0
for _, id in ipairs(ids) do
  if redis.call('HEXISTS', ARGV[2] .. id, 'x') == 1 then
    redis.call('DEL', ARGV[2] .. id)
    redis.call('ZREM', ARGV[1], id)
    n = n + 1
  end
end
return n
";

/// KEYS[1] entry; ARGV: value, ttl ms or '', expected version ('' = must
/// be absent, '*' = unconditional). Returns the new version or nil.
pub(crate) const KV_SET: &str = r"
if ARGV[3] ~= '*' then
  local n = redis.call('HGET', KEYS[1], 'n')
  if ARGV[3] == '' then
    if n then return false end
  elseif n ~= ARGV[3] then
    return false
  end
end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HSET', KEYS[1], 'v', ARGV[1])
if ARGV[2] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) else redis.call('PERSIST', KEYS[1]) end
return n
";
