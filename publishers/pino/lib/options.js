'use strict'
// The transport's options: defaults written once, each checked with a message naming it.

const fs = require('node:fs')
const { credsAuthenticator } = require('@nats-io/transport-node')

const DEFAULTS = Object.freeze({
  servers: 'nats://127.0.0.1:4222',
  source: 'unknown',
  mode: 'binary',
  subjectPrefix: '',
  bufferEntries: 10000,
  bufferBytes: 16 * 1024 * 1024,
  overflow: 'drop_newest',
  chunkEntries: 256,
  closeTimeoutMs: 5000,
  dropReportIntervalMs: 5000,
  reconnectTimeWaitMs: 500,
  name: 'cortex-pino-nats'
})
// thread-stream gives the worker 10 s to end at exit; the close deadline stays inside it.
const MAX_CLOSE_TIMEOUT_MS = 9000
const SUBJECT = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/

function fail (name, want, got) {
  const error = new TypeError(`cortex-pino-nats: option ${name} must be ${want}, got ${JSON.stringify(got)}`)
  error.code = 'CORTEX_PINO_NATS_OPTION'
  throw error
}

function positiveInt (opts, name, max = Number.MAX_SAFE_INTEGER) {
  const value = opts[name]
  if (!Number.isInteger(value) || value <= 0 || value > max) fail(name, `an integer from 1 to ${max}`, value)
  return value
}

function oneOf (opts, name, choices) {
  if (!choices.includes(opts[name])) fail(name, `one of ${choices.join(', ')}`, opts[name])
  return opts[name]
}

function text (opts, name, { empty = false } = {}) {
  const value = opts[name]
  if (typeof value !== 'string' || (!empty && value === '')) fail(name, empty ? 'a string' : 'a non-empty string', value)
  return value
}

/**
 * Validate the options given to pino.transport({target, options}).
 * @throws {TypeError} naming the option and what it must be
 */
function parseOptions (given = {}) {
  const opts = { ...DEFAULTS, ...given }
  const servers = Array.isArray(opts.servers) ? opts.servers : String(opts.servers).split(',')
  if (servers.length === 0 || servers.some((s) => typeof s !== 'string' || s.trim() === '')) {
    fail('servers', 'a URL or a list of URLs', opts.servers)
  }
  if (opts.subjectPrefix !== '' && !SUBJECT.test(text(opts, 'subjectPrefix'))) {
    fail('subjectPrefix', 'dot-separated tokens of letters, digits, _ and -', opts.subjectPrefix)
  }
  return {
    servers: servers.map((s) => s.trim()),
    source: text(opts, 'source'),
    mode: oneOf(opts, 'mode', ['binary', 'structured']),
    subjectPrefix: opts.subjectPrefix,
    bufferEntries: positiveInt(opts, 'bufferEntries'),
    bufferBytes: positiveInt(opts, 'bufferBytes'),
    overflow: oneOf(opts, 'overflow', ['drop_newest', 'drop_oldest']),
    chunkEntries: positiveInt(opts, 'chunkEntries'),
    closeTimeoutMs: positiveInt(opts, 'closeTimeoutMs', MAX_CLOSE_TIMEOUT_MS),
    dropReportIntervalMs: positiveInt(opts, 'dropReportIntervalMs'),
    reconnectTimeWaitMs: positiveInt(opts, 'reconnectTimeWaitMs'),
    name: text(opts, 'name'),
    auth: authOptions(opts)
  }
}

/** The NATS client's authentication and TLS options. */
function authOptions (opts) {
  const out = {}
  if (opts.token !== undefined) out.token = text(opts, 'token')
  if (opts.user !== undefined) {
    out.user = text(opts, 'user')
    out.pass = text(opts, 'password', { empty: true })
  }
  if (opts.credsFile !== undefined) {
    const path = text(opts, 'credsFile')
    let creds
    try {
      creds = fs.readFileSync(path)
    } catch (err) {
      fail('credsFile', 'a readable credentials file', `${path} (${err.code})`)
    }
    out.authenticator = credsAuthenticator(new Uint8Array(creds))
  }
  if (opts.tls !== undefined) {
    const tls = opts.tls
    if (tls === null || typeof tls !== 'object') fail('tls', 'an object ({caFile, certFile, keyFile})', tls)
    out.tls = { ...tls }
  }
  return out
}

module.exports = { DEFAULTS, MAX_CLOSE_TIMEOUT_MS, parseOptions }
