'use strict'
// Through a real nats-server and a real gateway (pytest starts both: tests/test_pino.py).

const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const { once } = require('node:events')
const { after, before, describe, test } = require('node:test')
const pino = require('pino')
const { TARGET, URL, collectBatches, freePort, report, runChild, until } = require('../support/helpers')

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal']
const EXPECTED_LEVEL = { trace: 'debug', debug: 'debug', info: 'info', warn: 'warn', error: 'error', fatal: 'fatal' }
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

/** Log n records of every kind the mapping knows; returns what each should become. */
function logRecords (logger, run, n) {
  const expected = []
  const billing = logger.child({ module: 'billing' })
  for (let i = 0; i < n; i++) {
    const level = LEVELS[i % LEVELS.length]
    const fields = { run, n: i, orderId: `o-${i}` }
    if (i % 7 === 0) fields.err = new TypeError(`bad card ${i}`)
    if (i % 5 === 0) Object.assign(fields, { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331' })
    if (i % 3 === 0) fields.userId = `u-${i}`
    const source = i % 2 === 0 ? 'billing' : 'pino-test';
    (i % 2 === 0 ? billing : logger)[level](fields, `record ${i}`)
    expected.push({ i, level: EXPECTED_LEVEL[level], source, fields })
  }
  return expected
}

function checkEntry (entry, want, window) {
  assert.equal(entry.level, want.level)
  assert.equal(entry.message, `record ${want.i}`)
  assert.equal(entry.source, want.source)
  assert.match(entry.createdAt, ISO)
  const ms = Date.parse(entry.createdAt)
  assert.ok(ms >= window[0] && ms <= window[1], `createdAt ${entry.createdAt} outside the test`)
  assert.equal(entry.metadata.orderId, `o-${want.i}`)
  assert.equal(entry.metadata.pid, process.pid)
  for (const gone of ['msg', 'level', 'time', 'module', 'err', 'traceId', 'spanId', 'userId']) {
    assert.equal(gone in entry.metadata, false, `${gone} left in metadata`)
  }
  if (want.fields.err) {
    assert.equal(entry.metadata.exception.type, 'TypeError')
    assert.equal(entry.metadata.exception.message, `bad card ${want.i}`)
    assert.match(entry.metadata.exception.stack, /^TypeError: bad card/)
  } else assert.equal(entry.metadata.exception, undefined)
  assert.equal(entry.traceId, want.fields.traceId)
  assert.equal(entry.spanId, want.fields.spanId)
  assert.equal(entry.userId, want.fields.userId)
}

describe('through a real gateway', { skip: URL ? false : 'CORTEX_PINO_NATS_URL is not set (tests/test_pino.py sets it)' }, () => {
  let batches
  before(async () => { batches = await collectBatches(URL) })
  after(async () => { await batches?.nc.close() })

  for (const mode of ['binary', 'structured']) {
    test(`${mode} mode: N records logged through pino arrive in batches exactly once, mapped`, async () => {
      const run = crypto.randomUUID()
      const n = mode === 'binary' ? 600 : 120
      const transport = pino.transport({ target: TARGET, options: { servers: URL, source: 'pino-test', mode } })
      const logger = pino({ level: 'trace' }, transport)
      const window = [Date.now() - 1, 0]
      const expected = logRecords(logger, run, n)
      window[1] = Date.now() + 1
      report(run, n)
      transport.end()
      await once(transport, 'close')
      await until(() => batches.entries(run).length >= n, 20000, `${n} entries of run ${run}`)
      const got = batches.entries(run)
      assert.equal(got.length, n)
      const byN = new Map(got.map((e) => [e.metadata.n, e]))
      assert.equal(byN.size, n, 'an entry arrived twice')
      assert.equal(new Set(got.map((e) => e.logId)).size, n)
      for (const want of expected) checkEntry(byN.get(want.i), want, window)
      assert.ok(batches.batches.filter((b) => b.entries.some((e) => e.metadata?.run === run)).length < n / 10,
        'entries were not batched')
    })
  }

  test('a logger that exits right after logging loses nothing', async () => {
    const run = crypto.randomUUID()
    const n = 2000
    report(run, n)
    const child = await runChild('log-and-exit.js', {
      RUN: run, LOG_COUNT: String(n), TRANSPORT_OPTIONS: JSON.stringify({ servers: URL })
    })
    assert.equal(child.code, 0, child.stderr)
    assert.equal(child.stderr, '', 'the transport reported trouble')
    await until(() => batches.entries(run).length >= n, 20000, `${n} entries of the child`)
    const got = batches.entries(run)
    assert.deepEqual(got.map((e) => e.metadata.n).sort((a, b) => a - b), [...Array(n).keys()])
    assert.ok(got.every((e) => e.source === 'pino-exit'))
  })

  test('a stopped server: the transport drops and counts, the logger never waits', async () => {
    const run = crypto.randomUUID()
    const n = 3000
    report(run, 0)
    const dead = `nats://127.0.0.1:${await freePort()}`
    const options = { servers: dead, bufferEntries: 100, closeTimeoutMs: 300, reconnectTimeWaitMs: 100 }
    const started = Date.now()
    const child = await runChild('log-and-exit.js', {
      RUN: run, LOG_COUNT: String(n), TRANSPORT_OPTIONS: JSON.stringify(options)
    })
    assert.equal(child.code, 0, child.stderr)
    assert.match(child.stderr, /cannot connect to nats:\/\/127\.0\.0\.1:\d+/)
    assert.match(child.stderr, /dropped \d+ entries \(overflow_newest: \d+\)/)
    assert.match(child.stderr, /closed: published 0, dropped 3000 \(overflow_newest: 2900, shutdown: 100\)/)
    // The calls return while nothing can be sent: far below one connection attempt per call.
    const { loggingMs } = JSON.parse(child.stdout)
    assert.ok(loggingMs < 2000, `3000 logger.info calls took ${loggingMs} ms`)
    assert.ok(Date.now() - started < 8000, 'exit waited beyond the close deadline')
  })
})
