"""The Lua scripts of the Redis journal and its consumers, in one place.

Each runs as one atomic step on the server. They write entry ids as
``string.format('%d-0', seq)``, the form ``_redis_ids.entry_id`` builds and
``entry_seq`` reads back (tests/persistence/test_redis_ids.py holds them to
agreement). ``RedisJournal`` runs APPEND (every append of a group commit),
SNAPSHOT and ACK; ``RedisConsumer`` runs DEAD_LETTER (DEAD_LETTER_APPEND on a cluster) and RENEW.
"""

from __future__ import annotations

# Every append of a group commit in one script: each is checked and written on its
# own (a conflict or an error fails that append alone), and the whole batch is one
# atomic step on the server. Per append, ARGV holds expected seq, event count, ack
# count, fencing token (0: not fenced), a (payload, checksum) pair per event, then
# (group, seq) per ack; KEYS its events key, meta key, its fence key if the token is
# not 0, and one offsets key per ack. A fenced append is refused when its token is
# below the highest the stream's fence key holds (which it raises otherwise), before
# its seq is even looked at. The reply is one string, "<code>:<value>" per append
# joined by ",": 1 = appended (value: new highest seq), 0 = conflict (value: the
# stream's highest seq), 2 = fenced (value: the highest token seen), -1 = error
# (value: the message). One bulk string parses far faster in redis-py than a nested
# array of a hundred replies.
APPEND = """
local out = {}
local k, a = 1, 1
while a <= #ARGV do
  local events, meta = KEYS[k], KEYS[k + 1]
  local expected, n, acks = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local token = tonumber(ARGV[a + 3])
  local first = a + 4
  local fenced = nil
  if token > 0 then
    local seen = tonumber(redis.call('GET', KEYS[k + 2]) or '0')
    if token < seen then fenced = seen elseif token > seen then redis.call('SET', KEYS[k + 2], token) end
    k = k + 1
  end
  local current = redis.pcall('HGET', meta, 'highest')
  if fenced then
    out[#out + 1] = string.format('2:%d', fenced)
  elseif type(current) == 'table' then
    out[#out + 1] = '-1:' .. string.gsub(current.err, ',', ';')
  else
    current = tonumber(current or '0')
    if current ~= expected then
      out[#out + 1] = string.format('0:%d', current)
    else
      local failed = nil
      for i = 1, n do
        local at = first + 2 * (i - 1)
        local r = redis.pcall('XADD', events, string.format('%d-0', expected + i),
          'p', ARGV[at], 'c', ARGV[at + 1])
        if type(r) == 'table' and r.err then failed = r.err break end
      end
      if failed then
        out[#out + 1] = '-1:' .. string.gsub(failed, ',', ';')
      else
        if n > 0 then redis.call('HSET', meta, 'highest', string.format('%d', expected + n)) end
        local g = first + 2 * n
        for j = 1, acks do
          local offsets, group, seq = KEYS[k + 1 + j], ARGV[g], tonumber(ARGV[g + 1])
          g = g + 2
          local old = tonumber(redis.call('HGET', offsets, group) or '0')
          if seq > old then redis.call('HSET', offsets, group, string.format('%d', seq)) end
        end
        out[#out + 1] = string.format('1:%d', expected + n)
      end
    end
  end
  k = k + 2 + acks
  a = first + 2 * n + 2 * acks
end
return table.concat(out, ',')
"""

# Put in front of a script to fence it: the last KEY is the stream's fence key, the last
# ARGV the writer's fencing token. A token below the highest seen fails the whole script
# with "FENCED <highest>" before it writes anything; a higher one is kept as the highest.
FENCE_PRELUDE = """
local fence_token = tonumber(ARGV[#ARGV])
local fence_seen = tonumber(redis.call('GET', KEYS[#KEYS]) or '0')
if fence_token < fence_seen then return redis.error_reply('FENCED ' .. fence_seen) end
if fence_token > fence_seen then redis.call('SET', KEYS[#KEYS], fence_token) end
"""

# Only the fence check (a fenced write that is not a script of its own: a trim).
FENCE_CHECK = FENCE_PRELUDE + "return 1\n"

# Store a snapshot (with its checksum) unless a newer one is stored already.
SNAPSHOT = """
local old = tonumber(redis.call('HGET', KEYS[1], 'snapshot_seq') or '-1')
if tonumber(ARGV[1]) >= old then
  redis.call('HSET', KEYS[1], 'snapshot_seq', ARGV[1], 'snapshot', ARGV[2], 'snapshot_crc', ARGV[3])
end
return 1
"""

# Store a snapshot only if the stored one is still at ARGV[4] ('' for none): 1 if stored.
SNAPSHOT_IF = """
local current = redis.call('HGET', KEYS[1], 'snapshot_seq')
if (current or '') ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], 'snapshot_seq', ARGV[1], 'snapshot', ARGV[2], 'snapshot_crc', ARGV[3])
return 1
"""

# Move a consumer group's offset; never backwards.
ACK = """
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > old then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"""

# Dead-letter an entry: ack it in the group and, only if this call acked it (a
# racing consumer may have), append it to the dead-letter journal stream under
# the next seq, with the reason beside the payload. One script: both or neither.
DEAD_LETTER = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local seq = tonumber(redis.call('HGET', KEYS[3], 'highest') or '0') + 1
redis.call('XADD', KEYS[2], string.format('%d-0', seq), 'p', ARGV[3], 'c', ARGV[8], 'reason', ARGV[4],
  'stream', ARGV[5], 'seq', ARGV[6], 'group', ARGV[1], 'deliveries', ARGV[7])
redis.call('HSET', KEYS[3], 'highest', string.format('%d', seq))
return seq
"""

# The same on Redis Cluster when the dead-letter stream lives in another slot than the
# stream (one script cannot touch both): this script appends on the dead-letter stream's
# slot, once per (stream, group, entry) thanks to a marker field in its meta hash, and the
# consumer XACKs the entry afterwards. A crash in between leaves the entry pending: it is
# delivered again, dead-lettered again, and this script answers the seq it wrote the first
# time instead of writing it twice. KEYS: dead-letter events, dead-letter meta; ARGV as
# DEAD_LETTER's, ARGV[9] the marker. Answers the dead letter's seq, negative if it was
# written before.
DEAD_LETTER_APPEND = """
local before = redis.call('HGET', KEYS[2], ARGV[9])
if before then return -tonumber(before) end
local seq = tonumber(redis.call('HGET', KEYS[2], 'highest') or '0') + 1
redis.call('XADD', KEYS[1], string.format('%d-0', seq), 'p', ARGV[3], 'c', ARGV[8], 'reason', ARGV[4],
  'stream', ARGV[5], 'seq', ARGV[6], 'group', ARGV[1], 'deliveries', ARGV[7])
redis.call('HSET', KEYS[2], 'highest', string.format('%d', seq), ARGV[9], string.format('%d', seq))
return seq
"""

# Renew this consumer's hold on entries: each one still pending under this consumer has its
# idle time reset (XCLAIM to itself, min-idle 0, JUSTID: the delivery count is not touched);
# one another consumer has claimed is left alone. One script, so a claim cannot slip in
# between the owner check and the reset. Answers the ids renewed.
RENEW = """
local kept = {}
for i, id in ipairs(ARGV) do
  if i > 2 then
    local row = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
    if row[1] and row[1][2] == ARGV[2] then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
      kept[#kept + 1] = id
    end
  end
end
return kept
"""
