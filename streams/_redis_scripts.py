"""Per-batch Redis calls as Lua scripts taking newline-joined ids (scorer, review queue).

Why: redis-py packs every argument of every command in Python (~2 us each). A batch of
500 transactions used to send one MGET, eight SMISMEMBERs and 500 SETs: ~5,000 packed
arguments, about a fifth of the scorer's CPU. Joined into a handful of string arguments,
the same work costs two joins in Python and a split in Redis's Lua.

Newline is a safe separator: identifiers cannot hold one (``schemas._types.Identifier``),
and orjson's compact JSON never writes a raw newline (it escapes one inside a string).

Both scripts name keys they were not given in ``KEYS``; that is fine on one Redis server
(the deployments fraudstream supports) and would need hash tags on Redis Cluster.
"""

from __future__ import annotations

__all__ = ["CACHE_DECISIONS", "ENRICH", "SEPARATOR", "USER_HISTORY"]

SEPARATOR = "\n"

#: A plain find (memchr) per separator: Lua's pattern matcher (gmatch) walked the ~1 MB
#: of a batch's payloads char by char, 10 ms of Redis's single thread per batch.
_SPLIT = """
local function split(joined)
  local out, start = {}, 1
  while true do
    local stop = string.find(joined, '\\n', start, true)
    if stop == nil then
      out[#out + 1] = string.sub(joined, start)
      return out
    end
    out[#out + 1] = string.sub(joined, start, stop - 1)
    start = stop + 1
  end
end
"""

#: KEYS: none. ARGV[1]: TTL in seconds; ARGV[2]: the decision key prefix; ARGV[3]: the
#: joined tx_ids; ARGV[4]: the joined decision payloads, in the same order.
#: NX: a repeat (after the dedupe horizon, or replayed) never replaces the first decision.
CACHE_DECISIONS = (
    _SPLIT
    + """
local ids = split(ARGV[3])
local payloads = split(ARGV[4])
if #ids ~= #payloads then
  return redis.error_reply('cache_decisions: ' .. #ids .. ' ids but ' .. #payloads .. ' payloads')
end
for i = 1, #ids do
  redis.call('SET', ARGV[2] .. ids[i], payloads[i], 'EX', ARGV[1], 'NX')
end
return #ids
"""
)

#: KEYS: for each list field (user, card, device, merchant) its deny set, then its allow
#: set (8 keys). ARGV[1]: the merchant record key prefix; ARGV[2]: the joined merchant ids
#: (one per row); ARGV[3..6]: the joined user, card, device and merchant ids to look up
#: in the lists (an empty entry: the row has no such id).
#: Returns {merchant records (nil where absent), allow flags, deny flags}, the flags as
#: one '0'/'1' character per row.
ENRICH = (
    _SPLIT
    + """
local merchants = split(ARGV[2])
local n = #merchants
local records, allow, deny = {}, {}, {}
for i = 1, n do
  records[i] = redis.call('GET', ARGV[1] .. merchants[i])
  allow[i] = '0'
  deny[i] = '0'
end
for f = 1, 4 do
  local deny_key, allow_key = KEYS[2 * f - 1], KEYS[2 * f]
  local check_deny = redis.call('EXISTS', deny_key) == 1
  local check_allow = redis.call('EXISTS', allow_key) == 1
  if check_deny or check_allow then
    local ids = split(ARGV[2 + f])
    for i = 1, n do
      local id = ids[i]
      if id ~= nil and id ~= '' then
        if check_deny and deny[i] == '0' and redis.call('SISMEMBER', deny_key, id) == 1 then
          deny[i] = '1'
        end
        if check_allow and allow[i] == '0' and redis.call('SISMEMBER', allow_key, id) == 1 then
          allow[i] = '1'
        end
      end
    end
  end
end
return {records, table.concat(allow), table.concat(deny)}
"""
)


#: KEYS: none. ARGV[1]: the user-list key prefix; ARGV[2]: entries kept per user; ARGV[3]:
#: TTL in seconds; ARGV[4]: the joined user ids; ARGV[5]: the joined events (compact JSON),
#: in the same order. The review console's per-user history, newest first.
USER_HISTORY = (
    _SPLIT
    + """
local users, events = split(ARGV[4]), split(ARGV[5])
local keep, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, #users do
  local key = ARGV[1] .. users[i]
  redis.call('LPUSH', key, events[i])
  redis.call('LTRIM', key, 0, keep - 1)
  redis.call('EXPIRE', key, ttl)
end
return #users
"""
)
