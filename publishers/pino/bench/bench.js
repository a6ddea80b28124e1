'use strict'
// The pino transport measured side by side in one run (README "The pino transport", Performance):
//   - the caller's cost per logger.info call: this transport, pino.destination to a file, and
//     publishing each entry on the main thread with the NATS client (the design the review warns
//     against), each in a fresh node process, round after round;
//   - end to end: entries/s from the first logger.info until every entry is in a stored batch.
// Needs a gateway on the NATS server given (log-gateway bench starts one; or `log-gateway run`).
//
//   node bench/bench.js --nats-url nats://127.0.0.1:4222 [--count 20000] [--rounds 3]
// Prints one JSON document on stdout; progress on stderr.

const { spawn } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { connect } = require('@nats-io/transport-node')
const pino = require('pino')
const { encodeEntry, subjectFor } = require('../lib/cloudevent')
const { toEntry } = require('../lib/entry')

const TARGET = path.join(__dirname, '..', 'index.js')
const CONTENDERS = ['transport', 'destination_file', 'main_thread_nats']
const WARMUP = 2000

function args (argv) {
  const out = { natsUrl: 'nats://127.0.0.1:4222', count: 20000, rounds: 3, one: undefined }
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-(\w)/g, (_, c) => c.toUpperCase())
    if (!(key in out)) throw new Error(`unknown argument ${argv[i]}`)
    out[key] = typeof out[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1]
  }
  return out
}

/** A realistic record: a child logger's bindings and a few fields, about 300 bytes of JSON. */
function logAll (logger, n, run) {
  for (let i = 0; i < n; i++) {
    logger.info({ run, n: i, orderId: `o-${i}`, userId: `u-${i % 97}`, ms: i % 1000, path: '/v1/charge' },
      'charged the card for the order')
  }
}

/** The naive design: pino's destination on the main thread maps, encodes and publishes each line. */
async function mainThreadDestination (url) {
  const nc = await connect({ servers: url })
  const keys = { source: 'bench-pino', messageKey: 'msg', errorKey: 'err' }
  let seq = 0
  const stream = {
    write (line) {
      const entry = toEntry(JSON.parse(line), keys, `main-${++seq}`)
      const msg = encodeEntry(entry, 'binary')
      nc.publish(subjectFor(entry.source, ''), msg.body, { headers: msg.headers })
    }
  }
  return { stream, close: () => nc.flush().then(() => nc.close()) }
}

/** End a stream and wait for its close (a timer holds the loop: the transport's worker is unref'd). */
function ended (stream) {
  const hold = setInterval(() => {}, 1000)
  return new Promise((resolve) => {
    stream.once('close', () => { clearInterval(hold); resolve() })
    stream.end()
  })
}

async function destination (contender, url, dir) {
  if (contender === 'transport') {
    const stream = pino.transport({ target: TARGET, options: { servers: url, bufferEntries: 200000 } })
    return { stream, ready: new Promise((resolve) => stream.once('ready', resolve)), close: () => ended(stream) }
  }
  if (contender === 'destination_file') {
    const stream = pino.destination(path.join(dir, 'bench.log'))
    return { stream, close: () => ended(stream) }
  }
  return mainThreadDestination(url)
}

/** One contender in this (fresh) process: microseconds per logger.info call. */
async function measureOne (contender, url, count) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pino-bench-'))
  const { stream, ready, close } = await destination(contender, url, dir)
  // pino sends the transport its config when the logger is made; the worker is ready after that.
  const logger = pino({}, stream).child({ module: 'bench-pino' })
  await ready
  logAll(logger, WARMUP, 'warmup')
  const started = process.hrtime.bigint()
  logAll(logger, count, 'measured')
  const us = Number(process.hrtime.bigint() - started) / 1e3 / count
  await close()
  fs.rmSync(dir, { recursive: true, force: true })
  return { call_us: us }
}

/** End to end: entries/s from the first call until the last entry is in a batch the gateway stored. */
async function endToEnd (url, count) {
  const nc = await connect({ servers: url })
  const run = crypto.randomUUID()
  let seen = 0
  let done
  const all = new Promise((resolve) => { done = resolve })
  nc.subscribe('cortex_logging.batch.created', {
    callback: (_err, msg) => {
      const batch = JSON.parse(Buffer.from(msg.data).toString()).data
      for (const entry of batch.entries) if (entry.metadata?.run === run) seen++
      if (seen >= count) done()
    }
  })
  await nc.flush()
  const stream = pino.transport({ target: TARGET, options: { servers: url, bufferEntries: count + 1 } })
  const ready = new Promise((resolve) => stream.once('ready', resolve))
  const logger = pino({}, stream).child({ module: 'bench-pino' })
  await ready
  const started = process.hrtime.bigint()
  logAll(logger, count, run)
  const timeout = setTimeout(() => done(), 120000)
  await all
  clearTimeout(timeout)
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  stream.end()
  await nc.close()
  if (seen < count) throw new Error(`only ${seen} of ${count} entries arrived in batches`)
  return { entries_per_s: count / seconds }
}

function fresh (one, opts) {
  return new Promise((resolve, reject) => {
    const argv = [__filename, '--one', one, '--nats-url', opts.natsUrl, '--count', String(opts.count)]
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d) => { out += d })
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`${one} exited ${code}`))))
  })
}

function spread (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
  return { median, min: sorted[0], max: sorted[sorted.length - 1] }
}

/** Rounds of every contender back to back, so each ratio compares neighbours. */
async function runAll (opts) {
  const rounds = []
  for (let r = 0; r < opts.rounds; r++) {
    const round = {}
    for (const contender of CONTENDERS) round[contender] = (await fresh(contender, opts)).call_us
    round.end_to_end = (await fresh('end_to_end', opts)).entries_per_s
    process.stderr.write(`pino bench round ${r + 1}: ${JSON.stringify(round)}\n`)
    rounds.push(round)
  }
  const pick = (fn) => spread(rounds.map(fn))
  return {
    count: opts.count,
    rounds: opts.rounds,
    node: process.version,
    call_us: Object.fromEntries(CONTENDERS.map((c) => [c, pick((r) => r[c])])),
    ratio_transport_to_destination_file: pick((r) => r.transport / r.destination_file),
    ratio_main_thread_nats_to_transport: pick((r) => r.main_thread_nats / r.transport),
    end_to_end_entries_per_s: pick((r) => r.end_to_end)
  }
}

async function main () {
  const opts = args(process.argv.slice(2))
  let result
  if (opts.one === 'end_to_end') result = await endToEnd(opts.natsUrl, opts.count)
  else if (opts.one) result = await measureOne(opts.one, opts.natsUrl, opts.count)
  else result = await runAll(opts)
  process.stdout.write(JSON.stringify(result, null, 2) + '\n')
}

main().catch((err) => {
  process.stderr.write(`pino bench: ${err.stack}\n`)
  process.exit(1)
})
