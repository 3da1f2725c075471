//! The Lua scripts that make Redis writes and feed reads atomic.

/// ARGV: now (µs), ops as JSON `[{rk, fk, lk, ck, id, e, d?}]` where `e` is
/// `"any"`, `"absent"` or a version and `d` the JSON text (absent for a
/// delete). Every change also goes into the change log `lk`, a sorted set
/// scored by seq whose members are MessagePack `[seq, id, v, d|false, u,
/// x|false]`. Returns `[[version, seq], ...]` or the error `CONFLICT <i> <found>`.
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
  local x = false
  if op.d == nil then x = now end
  redis.call('ZADD', op.lk, seq, cmsgpack.pack({ seq, op.id, versions[i], op.d or false, now, x }))
  out[i] = { versions[i], seq }
end
return out
";

/// ARGV: log key, after, limit. Returns `[[id, v, s, d|nil, u, x|nil], ...]`
/// in seq order, one per change.
pub(crate) const CHANGES: &str = r"
local entries = redis.call('ZRANGEBYSCORE', ARGV[1], '(' .. ARGV[2], '+inf', 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for i, packed in ipairs(entries) do
  local e = cmsgpack.unpack(packed)
  out[i] = { e[2], e[3], e[1], e[4], e[5], e[6] }
end
return out
";

/// ARGV: log key, record key prefix, up to, from (exclusive). Removes the
/// log entries in `(from, up to]` that are not their record's current
/// state, at most 10,000 scanned per call; returns `[removed, scanned,
/// last seq scanned]`.
pub(crate) const PRUNE: &str = r"
local entries = redis.call('ZRANGEBYSCORE', ARGV[1], '(' .. ARGV[4], ARGV[3], 'LIMIT', 0, 10000)
local n = 0
local last = tonumber(ARGV[4])
for _, packed in ipairs(entries) do
  local e = cmsgpack.unpack(packed)
  last = e[1]
  local s = redis.call('HGET', ARGV[2] .. e[2], 's')
  if (not s) or tonumber(s) ~= e[1] then
    redis.call('ZREM', ARGV[1], packed)
    n = n + 1
  end
end
return { n, #entries, last }
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
