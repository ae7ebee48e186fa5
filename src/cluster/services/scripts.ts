/**
 * Every change to shared service state is one Lua script, run atomically by Redis: two workers
 * reconciling at the same moment cannot both claim a slot, and a worker presumed dead cannot
 * answer a call that was already handed to another replica. Times are Redis's own (TIME), so the
 * clocks of the machines never have to agree on when a heartbeat lapsed.
 */
import type { Redis } from 'ioredis';

import type { ServiceKeys } from './keys.js';

const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/**
 * requeue(inflightKey, queueKey, retry, message): the calls a replica had taken go back to the
 * head of the queue, once: one already retried is answered with a 'lost' error instead. A
 * deliberate stop (retry = false) puts them back as they were. An envelope naming a reply key
 * outside this cluster's is dropped, never written to.
 */
const REQUEUE = `
local function requeue(key, queue, retry, message)
  local items = redis.call('LRANGE', key, 0, -1)
  for i = #items, 1, -1 do
    local ok, e = pcall(cjson.decode, items[i])
    if ok and type(e) == 'table' and type(e.reply) == 'string' and type(e.id) == 'string'
        and string.sub(e.reply, 1, #REPLY_PREFIX) == REPLY_PREFIX then
      if not retry then
        redis.call('RPUSH', queue, items[i])
      elseif e.attempt == 0 then
        e.attempt = 1
        redis.call('RPUSH', queue, cjson.encode(e))
      else
        redis.call('LPUSH', e.reply, cjson.encode({ id = e.id, ok = false, code = 'lost', message = message }))
        redis.call('EXPIRE', e.reply, 300)
      end
    end
  end
  redis.call('DEL', key)
end
`;

function withPrefixes(body: string): string {
  return `local REPLY_PREFIX = ARGV[1]\nlocal INFLIGHT_PREFIX = ARGV[2]\n${NOW}${REQUEUE}${body}`;
}

/** KEYS: workers, labels. ARGV: -, -, worker, timeout ms, labels JSON. → [now, lapsed (1: it had been presumed dead)] */
const HEARTBEAT = withPrefixes(`
local prev = redis.call('ZSCORE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[3])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[5])
local forgotten = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - 3600000)
for _, w in ipairs(forgotten) do redis.call('HDEL', KEYS[2], w) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 3600000)
local lapsed = 0
if prev and tonumber(prev) < now then lapsed = 1 end
return { now, lapsed }
`);

/**
 * KEYS: service, slots, workers, labels, queue, events. ARGV: -, -, worker, new replica id, name.
 * Slots of workers whose heartbeat lapsed are freed (their calls re-queued once), then the worker
 * claims one free slot if it runs no more replicas of this service than any other live worker
 * that may run it (so replicas spread, and a lost one is taken by whoever has fewest).
 * → [desired, claimed slot or -1, { slot, replica id } of the worker's slots...]
 */
const RECONCILE = withPrefixes(`
local me, fresh, name = ARGV[3], ARGV[4], ARGV[5]
local desired, constraints = 0, nil
local d = tonumber(redis.call('HGET', KEYS[1], 'replicas') or '0')
if d and d >= 0 and d <= 256 then desired = math.floor(d) end
local raw = redis.call('HGET', KEYS[1], 'spec')
if raw then
  local ok, s = pcall(cjson.decode, raw)
  if ok and type(s) == 'table' and type(s.constraints) == 'table' then constraints = s.constraints end
else
  desired = 0
end
local function alive(w)
  local sc = redis.call('ZSCORE', KEYS[3], w)
  return sc and tonumber(sc) >= now
end
local function eligible(w)
  if not constraints then return true end
  local lj = redis.call('HGET', KEYS[4], w)
  if not lj then return false end
  local ok, l = pcall(cjson.decode, lj)
  if not ok or type(l) ~= 'table' then return false end
  for k, v in pairs(constraints) do if l[k] ~= v then return false end end
  return true
end
local counts = {}
for _, w in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], now, '+inf')) do
  if eligible(w) then counts[w] = 0 end
end
local taken, mine = {}, {}
local slots = redis.call('HGETALL', KEYS[2])
for i = 1, #slots, 2 do
  local field = slots[i]
  local idx = tonumber(field)
  local ok, sl = pcall(cjson.decode, slots[i + 1])
  if idx == nil or idx < 0 or idx ~= math.floor(idx) or not ok or type(sl) ~= 'table'
      or type(sl.worker) ~= 'string' or type(sl.id) ~= 'string' then
    redis.call('HDEL', KEYS[2], field)
  elseif not alive(sl.worker) then
    requeue(INFLIGHT_PREFIX .. sl.id, KEYS[5], true,
      'service ' .. name .. ': the call was lost twice (replica ' .. sl.id .. ' on worker ' .. sl.worker .. ' stopped heart-beating)')
    redis.call('HDEL', KEYS[2], field)
    redis.call('HSET', KEYS[6], 'lastCrash', cjson.encode({ at = now, worker = sl.worker, replica = sl.id, reason = 'worker-lost' }))
  else
    if idx < desired then
      taken[idx] = true
      if counts[sl.worker] then counts[sl.worker] = counts[sl.worker] + 1 end
    end
    if sl.worker == me then
      table.insert(mine, field)
      table.insert(mine, sl.id)
    end
  end
end
local claimed = -1
if counts[me] ~= nil then
  local least = counts[me]
  for _, c in pairs(counts) do if c < least then least = c end end
  if least == counts[me] then
    for i = 0, desired - 1 do
      if not taken[i] then
        claimed = i
        redis.call('HSET', KEYS[2], tostring(i), cjson.encode({ worker = me, id = fresh, state = 'starting', since = now, restarts = 0 }))
        table.insert(mine, tostring(i))
        table.insert(mine, fresh)
        break
      end
    end
  end
end
return { desired, claimed, mine }
`);

/**
 * KEYS: slots, events. ARGV: -, -, slot, replica id, slot JSON, crash JSON or ''. The slot is
 * written only while this replica still holds it. → 1 or 0
 */
const UPDATE_SLOT = withPrefixes(`
local cur = redis.call('HGET', KEYS[1], ARGV[3])
if not cur then return 0 end
local ok, sl = pcall(cjson.decode, cur)
if not ok or type(sl) ~= 'table' or sl.id ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[5])
if ARGV[6] ~= '' then redis.call('HSET', KEYS[2], 'lastCrash', ARGV[6]) end
return 1
`);

/**
 * KEYS: slots, queue. ARGV: -, -, slot, replica id, retry (1/0), message. The replica's calls are
 * re-queued and, when `slot` is not empty, the slot is given up if this replica still holds it.
 */
const RELEASE = withPrefixes(`
requeue(INFLIGHT_PREFIX .. ARGV[4], KEYS[2], ARGV[5] == '1', ARGV[6])
if ARGV[3] ~= '' then
  local cur = redis.call('HGET', KEYS[1], ARGV[3])
  if cur then
    local ok, sl = pcall(cjson.decode, cur)
    if not ok or type(sl) ~= 'table' or sl.id == ARGV[4] then redis.call('HDEL', KEYS[1], ARGV[3]) end
  end
end
return 1
`);

/**
 * KEYS: inflight, reply. ARGV: -, -, envelope, reply JSON. The reply is sent only if the call is
 * still this replica's: one re-queued meanwhile (its worker presumed dead) is answered by the retry.
 */
const ANSWER = withPrefixes(`
if redis.call('LREM', KEYS[1], 1, ARGV[3]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[4])
redis.call('EXPIRE', KEYS[2], 300)
return 1
`);

/** KEYS: service, queue. ARGV: -, -, envelope. → 0 when there is no such service. */
const ENQUEUE = withPrefixes(`
if redis.call('HEXISTS', KEYS[1], 'spec') == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[3])
return 1
`);

/** KEYS: service, names. ARGV: -, -, name, spec JSON, replicas. → 0 when it exists already. */
const CREATE = withPrefixes(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'spec', ARGV[4], 'replicas', ARGV[5])
redis.call('SADD', KEYS[2], ARGV[3])
return 1
`);

/** KEYS: service. ARGV: -, -, replicas. → 0 when there is no such service. */
const SCALE = withPrefixes(`
if redis.call('HEXISTS', KEYS[1], 'spec') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'replicas', ARGV[3])
return 1
`);

/**
 * KEYS: service, names, queue, events. ARGV: -, -, name. Calls still queued are answered with a
 * 'removed' error; the replicas are stopped by their workers, which see no spec any more.
 */
const REMOVE = withPrefixes(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[4])
redis.call('SREM', KEYS[2], ARGV[3])
for _, item in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  local ok, e = pcall(cjson.decode, item)
  if ok and type(e) == 'table' and type(e.reply) == 'string' and type(e.id) == 'string'
      and string.sub(e.reply, 1, #REPLY_PREFIX) == REPLY_PREFIX then
    redis.call('LPUSH', e.reply, cjson.encode({ id = e.id, ok = false, code = 'removed', message = 'service ' .. ARGV[3] .. ' was removed' }))
    redis.call('EXPIRE', e.reply, 300)
  end
end
redis.call('DEL', KEYS[3])
return 1
`);

const SCRIPTS = {
  svcHeartbeat: [2, HEARTBEAT],
  svcReconcile: [6, RECONCILE],
  svcUpdateSlot: [2, UPDATE_SLOT],
  svcRelease: [2, RELEASE],
  svcAnswer: [2, ANSWER],
  svcEnqueue: [2, ENQUEUE],
  svcCreate: [2, CREATE],
  svcScale: [1, SCALE],
  svcRemove: [4, REMOVE],
} as const;

type ScriptName = keyof typeof SCRIPTS;
type Caller = (...args: (string | number)[]) => Promise<unknown>;

/** The scripts on one connection (ioredis sends each by its SHA once Redis has it). */
export class Scripts {
  private readonly redis: Redis;
  private readonly keys: ServiceKeys;

  constructor(redis: Redis, keys: ServiceKeys) {
    this.redis = redis;
    this.keys = keys;
    for (const [name, [numberOfKeys, lua]] of Object.entries(SCRIPTS)) {
      if (!(name in redis)) redis.defineCommand(name, { numberOfKeys, lua });
    }
  }

  run(name: ScriptName, keys: string[], args: (string | number)[]): Promise<unknown> {
    const fn = (this.redis as unknown as Record<ScriptName, Caller>)[name];
    return fn.call(this.redis, ...keys, this.keys.replyPrefix, this.keys.inflightPrefix, ...args);
  }
}
