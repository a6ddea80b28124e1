'use strict'
// Shared by the node tests: the environment pytest gives them, waiting on conditions,
// collecting the gateway's batches, children that log, and the report pytest reads.

const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const { once } = require('node:events')
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const { connect } = require('@nats-io/transport-node')

const TARGET = path.join(__dirname, '..', 'index.js')
const URL = process.env.CORTEX_PINO_NATS_URL
const REPORT = process.env.CORTEX_PINO_REPORT
const SERVER_BIN = process.env.CORTEX_PINO_NATS_SERVER_BIN
const BATCH_SUBJECT = 'cortex_logging.batch.created'

/** Wait until predicate() holds (checked every 10 ms: the state is another process's). */
async function until (predicate, timeoutMs = 20000, what = 'condition') {
  const end = Date.now() + timeoutMs
  while (!(await predicate())) {
    if (Date.now() > end) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Every entry of every batch the gateway publishes, from now on, grouped by metadata.run. */
async function collectBatches (url) {
  const nc = await connect({ servers: url })
  const runs = new Map()
  const batches = []
  const sub = nc.subscribe(BATCH_SUBJECT, {
    callback: (_err, msg) => {
      const batch = JSON.parse(Buffer.from(msg.data).toString()).data
      batches.push(batch)
      for (const entry of batch.entries) {
        const run = entry.metadata?.run
        if (!runs.has(run)) runs.set(run, [])
        runs.get(run).push(entry)
      }
    }
  })
  await nc.flush()
  return { nc, sub, runs, batches, entries: (run) => runs.get(run) ?? [] }
}

/** Tell pytest how many entries of a run the gateway must have stored, each once. */
function report (run, expected) {
  if (REPORT) fs.appendFileSync(REPORT, JSON.stringify({ run, expected }) + '\n')
}

/** Run a fixture script in a child node process; resolves with its exit code, stdout and stderr. */
function runChild (script, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, script)], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += d })
    child.stderr.on('data', (d) => { stderr += d })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

/** A loopback port nothing listens on (taken from the OS, then let go). */
function freePort () {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
    server.on('error', reject)
  })
}

/** A nats-server of the test's own (JetStream on, its store in dir), ready once it says so. */
async function startServer ({ port, dir, args = [] }) {
  const child = spawn(SERVER_BIN, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir, ...args], {
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let log = ''
  await new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => {
      log += d
      if (log.includes('Server is ready')) resolve()
    })
    child.on('error', reject)
    child.on('exit', (code) => reject(new Error(`nats-server exited (${code}): ${log}`)))
  })
  return {
    url: `nats://127.0.0.1:${port}`,
    stop: () => {
      const exited = once(child, 'exit')
      child.kill('SIGTERM')
      return exited
    }
  }
}

/** A JetStream API request over the core client (no JetStream package needed). */
async function jsApi (nc, api, body = {}) {
  const reply = await nc.request(`$JS.API.${api}`, JSON.stringify(body), { timeout: 5000 })
  const answer = JSON.parse(Buffer.from(reply.data).toString())
  if (answer.error) throw new Error(`${api}: ${answer.error.description}`)
  return answer
}

/** Every message a stream holds, its data parsed. */
async function streamData (nc, stream) {
  const info = await jsApi(nc, `STREAM.INFO.${stream}`)
  const out = []
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const { message } = await jsApi(nc, `STREAM.MSG.GET.${stream}`, { seq })
    out.push(JSON.parse(Buffer.from(message.data, 'base64').toString()))
  }
  return out
}

module.exports = {
  BATCH_SUBJECT, REPORT, SERVER_BIN, TARGET, URL,
  collectBatches, freePort, jsApi, report, runChild, startServer, streamData, until
}
