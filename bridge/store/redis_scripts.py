"""The Redis store's Lua: each script is one atomic step on the server (Redis runs a script alone),
which is how two instances writing the same room, or racing for a tenant's last slot, stay correct
without a lock service. Keys come in ``KEYS`` (named in ``redis_keys.py``); the only key a script
builds itself is the day counter a reservation recorded (read back from the reservations hash)."""

from __future__ import annotations

# The index writes shared by PUT and RESERVE. KEYS: 1 room, 2 rooms, 3 tenant rooms, 4 live, 5 closed,
# 6 tenant live, 7 tenant closed, 8 reservations, 9 the opening browser key's live rooms (touched only
# if ARGV 8 is 1). ARGV: 1 id, 2 expected version, 3 record, 4 created_at, 5 live (1/0), 6 closed_at
# ('' if none), 7 seconds the room used (if not live), 8 a browser key opened it (1/0)
_INDEX = """
local function index()
  redis.call('SET', KEYS[1], ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
  if ARGV[8] == '1' then
    redis.call(ARGV[5] == '1' and 'SADD' or 'SREM', KEYS[9], ARGV[1])
  end
  if ARGV[5] == '1' then
    redis.call('SADD', KEYS[4], ARGV[1])
    redis.call('SADD', KEYS[6], ARGV[1])
    redis.call('ZREM', KEYS[5], ARGV[1])
    redis.call('ZREM', KEYS[7], ARGV[1])
    return
  end
  redis.call('SREM', KEYS[4], ARGV[1])
  redis.call('SREM', KEYS[6], ARGV[1])
  if ARGV[6] ~= '' then
    redis.call('ZADD', KEYS[5], ARGV[6], ARGV[1])
    redis.call('ZADD', KEYS[7], ARGV[6], ARGV[1])
  end
  -- a reserved room ended: give its day back the part it did not use
  local held = redis.call('HGET', KEYS[8], ARGV[1])
  if held then
    local day, reserved = string.match(held, '^(%S+) (%S+)$')
    if redis.call('EXISTS', day) == 1 then
      redis.call('INCRBYFLOAT', day, tostring(tonumber(ARGV[7]) - tonumber(reserved)))
    end
    redis.call('HDEL', KEYS[8], ARGV[1])
  end
end
"""

# put: write the room if the stored version is the caller's (or there is none). Returns -1 when
# written, else the stored version (StaleRoomError).
PUT = _INDEX + """
local current = redis.call('GET', KEYS[1])
if current then
  local version = cjson.decode(current)['version']
  if version ~= tonumber(ARGV[2]) then return version end
end
index()
return -1
"""

# insert_within_caps: count the browser key's and the tenant's live rooms and read the tenant's day's
# reserved seconds, then insert the room and reserve its seconds, or name the cap refused. KEYS as PUT +
# 10 the day's seconds counter. ARGV as PUT + 9 max rooms, 10 max seconds of the day, 11 seconds to
# reserve, 12 counter TTL, 13 the browser key's max rooms ('' when no browser key opens it).
RESERVE = _INDEX + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
if ARGV[13] ~= '' and redis.call('SCARD', KEYS[9]) >= tonumber(ARGV[13]) then return 'browser_key_rooms' end
if redis.call('SCARD', KEYS[6]) >= tonumber(ARGV[9]) then return 'concurrent_rooms' end
local used = tonumber(redis.call('GET', KEYS[10]) or '0')
if used + tonumber(ARGV[11]) > tonumber(ARGV[10]) then return 'room_minutes_per_day' end
index()
redis.call('INCRBYFLOAT', KEYS[10], ARGV[11])
redis.call('EXPIRE', KEYS[10], ARGV[12])
redis.call('HSET', KEYS[8], ARGV[1], KEYS[10] .. ' ' .. ARGV[11])
return false
"""

# enqueue: a webhook event once. KEYS: 1 id counter, 2 webhook ids, 3 data, 4 all, 5 tenant's, 6 the
# order key's queue, 7 heads, 8 next attempts, 9 settled. ARGV: 1 webhook id, 2 data, 3 order key,
# 4 status, 5 next_attempt_at, 6 created_at. Returns the new id, or 0 if the webhook id is there.
ENQUEUE = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], id)
redis.call('HSET', KEYS[3], id, ARGV[2])
redis.call('HSET', KEYS[8], id, ARGV[5])
redis.call('ZADD', KEYS[4], id, id)
redis.call('ZADD', KEYS[5], id, id)
if ARGV[4] == 'pending' then
  redis.call('ZADD', KEYS[6], id, id)
  local head = redis.call('ZRANGE', KEYS[6], 0, 0)[1]
  redis.call('ZADD', KEYS[7], redis.call('HGET', KEYS[8], head), ARGV[3])
else
  redis.call('ZADD', KEYS[9], ARGV[6], id)
end
return id
"""

# update_delivery: KEYS: 1 data, 2 the order key's queue, 3 heads, 4 next attempts, 5 settled.
# ARGV: 1 id, 2 data, 3 status, 4 order key, 5 next_attempt_at, 6 created_at.
UPDATE_DELIVERY = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[5])
if ARGV[3] == 'pending' then
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
  redis.call('ZREM', KEYS[5], ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[5], ARGV[6], ARGV[1])
end
local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
if head then
  redis.call('ZADD', KEYS[3], redis.call('HGET', KEYS[4], head), ARGV[4])
else
  redis.call('ZREM', KEYS[3], ARGV[4])
end
return 1
"""

# charge: a room's ledger record once. KEYS: 1 record, 2 opened index, 3 tenant's index.
# ARGV: 1 data, 2 opened_at, 3 room id. Returns 1 if recorded, 0 if it was there.
CHARGE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
return 1
"""
