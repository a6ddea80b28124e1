'use strict'
// The pure parts: the mapping, the CloudEvent encoding, the bounded buffer, the drop report, options.

const assert = require('node:assert/strict')
const { test } = require('node:test')
const { headers: natsHeaders } = require('@nats-io/transport-node')
const { HeaderBlock, encodeEntry, percentEncode, subjectFor } = require('../lib/cloudevent')
const { DropCounter } = require('../lib/drops')
const { createdAt, levelName, toEntry } = require('../lib/entry')
const { parseOptions } = require('../lib/options')
const { BoundedQueue } = require('../lib/queue')

const KEYS = { source: 'svc', messageKey: 'msg', errorKey: 'err' }

test('pino levels map to the platform levels', () => {
  const got = [10, 20, 30, 40, 50, 60, 25, 35, 70].map((n) => levelName(n))
  assert.deepEqual(got, ['debug', 'debug', 'info', 'warn', 'error', 'fatal', 'debug', 'info', 'fatal'])
  assert.equal(levelName('warn'), 'warn')
  assert.equal(levelName('TRACE'), 'debug')
  assert.equal(levelName(35, { 35: 'error' }), 'error') // a custom level named like a platform one
  assert.equal(levelName('loud'), undefined)
})

test('time becomes createdAt in the platform form', () => {
  assert.equal(createdAt(1760342400000), '2025-10-13T08:00:00.000Z')
  assert.equal(createdAt(1760342400), '2025-10-13T08:00:00.000Z') // stdTimeFunctions.unixTime
  assert.equal(createdAt('2025-10-13T10:00:00.123+02:00'), '2025-10-13T08:00:00.123Z')
  for (const bad of ['yesterday', Number.NaN, -1, 1e20, null, {}]) assert.equal(createdAt(bad), undefined)
})

test('a record maps field by field, the rest into metadata', () => {
  const record = {
    level: 50, time: 1760342400000, pid: 7, hostname: 'h', module: 'billing', msg: 'declined',
    err: { type: 'TypeError', message: 'bad', stack: 'TypeError: bad\n  at x', code: 'E1' },
    traceId: 't'.repeat(32), spanId: 's'.repeat(16), userId: 'u-1', orderId: 'o-17', nested: { a: [1] }
  }
  assert.deepEqual(toEntry(record, KEYS, 'id-1'), {
    logId: 'id-1', level: 'error', message: 'declined', source: 'billing', createdAt: '2025-10-13T08:00:00.000Z',
    userId: 'u-1', traceId: 't'.repeat(32), spanId: 's'.repeat(16),
    metadata: Object.assign(Object.create(null), {
      pid: 7, hostname: 'h', orderId: 'o-17', nested: { a: [1] },
      exception: { type: 'TypeError', message: 'bad', stack: 'TypeError: bad\n  at x', code: 'E1' }
    })
  })
})

test('odd records still make valid entries, nothing of theirs lost', () => {
  const entry = toEntry({ level: 'loud', time: 'later', trace_id: 'abc', ['__proto__']: 1 }, KEYS, 'id', () => 0)
  assert.equal(entry.level, 'info')
  assert.equal(entry.message, '')
  assert.equal(entry.source, 'svc')
  assert.equal(entry.createdAt, '1970-01-01T00:00:00.000Z')
  assert.equal(entry.traceId, 'abc')
  assert.deepEqual({ ...entry.metadata }, { level: 'loud', time: 'later', ['__proto__']: 1 })
  const custom = toEntry({ level: 30, message: 'm', error: 'text', module: '' }, { ...KEYS, messageKey: 'message', errorKey: 'error' }, 'x')
  assert.equal(custom.message, 'm')
  assert.equal(custom.source, 'svc')
  assert.equal(custom.metadata.error, 'text')
})

test('binary mode: ce- headers percent-encoded as the gateway reads them; structured: one JSON event', () => {
  const entry = { logId: 'a-1', level: 'info', message: 'm', source: 'my svc', createdAt: '2025-10-13T08:00:00.000Z' }
  const binary = encodeEntry(entry, 'binary')
  assert.equal(binary.headers.get('ce-source'), '//my%20svc')
  assert.equal(binary.headers.get('ce-id'), 'a-1')
  assert.equal(binary.headers.get('ce-type'), 'cortex_logging.entry.created')
  assert.equal(binary.headers.get('content-type'), 'application/json')
  assert.deepEqual(JSON.parse(binary.body), entry)
  assert.ok(binary.size > binary.body.length)
  const structured = encodeEntry(entry, 'structured')
  assert.equal(structured.headers.get('content-type'), 'application/cloudevents+json')
  const event = JSON.parse(structured.body)
  assert.deepEqual([event.specversion, event.time, event.data], ['1.0', entry.createdAt, entry])
  assert.equal(percentEncode('a"b%c é'), 'a%22b%25c%20%C3%A9')
  assert.equal(subjectFor('a.b>c', 'pre.fix'), 'pre.fix.cortex_logging.entry.created.a_b_c')
})

test("a header block is the client's own MsgHdrs encoding, byte for byte", () => {
  const pairs = [['content-type', 'application/json'], ['ce-id', 'a-1'], ['ce-source', '//my%20svc']]
  const theirs = natsHeaders()
  for (const [name, value] of pairs) theirs.set(name, value)
  assert.deepEqual(Buffer.from(new HeaderBlock(pairs).encode()), Buffer.from(theirs.encode()))
})

test('the buffer holds its limits, counting each drop by policy', () => {
  const newest = new BoundedQueue({ maxEntries: 2, maxBytes: 100, overflow: 'drop_newest' })
  assert.deepEqual([1, 2, 3].map((id) => newest.push({ id, size: 10 })), [[], [], ['overflow_newest']])
  const oldest = new BoundedQueue({ maxEntries: 3, maxBytes: 25, overflow: 'drop_oldest' })
  for (const id of [1, 2]) oldest.push({ id, size: 10 })
  assert.deepEqual(oldest.push({ id: 3, size: 10 }), ['overflow_oldest'])
  assert.deepEqual(oldest.push({ id: 4, size: 30 }), ['payload_too_large'])
  const chunk = oldest.take(10)
  assert.deepEqual(chunk.map((i) => i.id), [2, 3])
  assert.deepEqual(oldest.push({ id: 5, size: 10 }), ['overflow_newest']) // in flight still counts
  oldest.settle(chunk)
  assert.deepEqual([oldest.held, oldest.bytes], [0, 0])
})

test('drops are written at most once per interval, and summed up on close', () => {
  const lines = []
  let clock = 0
  const drops = new DropCounter({ intervalMs: 1000, write: (l) => lines.push(l), now: () => clock })
  drops.count('overflow_newest')
  drops.count('overflow_newest', 4)
  clock = 1000
  drops.count('overflow_oldest')
  drops.count('shutdown', 2, { quiet: true })
  drops.close(10)
  assert.deepEqual(lines, [
    'dropped 1 entries (overflow_newest: 1); 1 since start',
    'dropped 5 entries (overflow_newest: 4, overflow_oldest: 1); 6 since start',
    'closed: published 10, dropped 8 (overflow_newest: 5, overflow_oldest: 1, shutdown: 2)'
  ])
})

test('bad options are refused, naming the option', () => {
  const cases = [
    [{ bufferEntries: 0 }, /option bufferEntries must be an integer from 1/],
    [{ overflow: 'block' }, /option overflow must be one of drop_newest, drop_oldest/],
    [{ mode: 'bare' }, /option mode must be one of binary, structured/],
    [{ closeTimeoutMs: 20000 }, /option closeTimeoutMs must be an integer from 1 to 9000/],
    [{ subjectPrefix: 'a.>' }, /option subjectPrefix must be dot-separated tokens/],
    [{ servers: [] }, /option servers must be a URL/],
    [{ credsFile: '/nonexistent.creds' }, /option credsFile must be a readable credentials file/],
    [{ source: '' }, /option source must be a non-empty string/],
    [{ user: 'u' }, /option password must be a string, got undefined/],
    [{ tls: 'yes' }, /option tls must be an object/]
  ]
  for (const [given, message] of cases) assert.throws(() => parseOptions(given), message)
  const parsed = parseOptions({ servers: 'nats://a:1, nats://b:2', user: 'u', password: 'p', token: 't' })
  assert.deepEqual(parsed.servers, ['nats://a:1', 'nats://b:2'])
  assert.deepEqual(parsed.auth, { token: 't', user: 'u', pass: 'p' })
})
