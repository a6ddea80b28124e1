'use strict'
// The worker's side: records in (never waiting on the network), a bounded buffer, a pump that
// publishes chunks while connected and waits for the server's PONG, and close within a deadline.

const crypto = require('node:crypto')
const fs = require('node:fs')
const { connect: natsConnect } = require('@nats-io/transport-node')
const { encodeEntry, subjectFor } = require('./cloudevent')
const { DropCounter } = require('./drops')
const { toEntry } = require('./entry')
const { BoundedQueue } = require('./queue')

function stderrLine (line) {
  try {
    // fs.writeSync, not process.stderr: the worker's stderr is relayed through the main thread,
    // which is blocked in thread-stream's end() while this worker flushes at exit.
    fs.writeSync(2, `cortex-pino-nats: ${line}\n`)
  } catch {
    // nowhere left to say it
  }
}

/** A URL without its user information, for messages. */
function shownUrl (url) {
  return url.replace(/\/\/[^@/]*@/, '//')
}

function deferred () {
  let resolve
  const promise = new Promise((_resolve) => { resolve = _resolve })
  return { promise, resolve }
}

class NatsTransport {
  /**
   * @param {object} options parsed by lib/options.js parseOptions
   * @param {{connect?: Function, write?: (line: string) => void, now?: () => number}} [deps]
   */
  constructor (options, { connect = natsConnect, write = stderrLine, now = Date.now } = {}) {
    this.options = options
    this.connectFn = connect
    this.write = write
    this.now = now
    this.queue = new BoundedQueue({
      maxEntries: options.bufferEntries, maxBytes: options.bufferBytes, overflow: options.overflow
    })
    this.drops = new DropCounter({ intervalMs: options.dropReportIntervalMs, write, now })
    this.keys = { source: options.source, messageKey: 'msg', errorKey: 'err', labels: undefined }
    this.published = 0
    this.nc = undefined
    this.connected = false
    this.closing = false
    this.stopped = false
    this.chunk = []
    this.wake = deferred()
    this.stop = deferred()
    this.idle = undefined
    this.warned = new Map()
    this.idPrefix = crypto.randomBytes(6).toString('hex')
    this.seq = 0
    this.subjects = new Map()
  }

  /** Take the logger's messageKey, errorKey and level labels (pino sends its config). */
  configure ({ messageKey, errorKey, levels } = {}) {
    if (typeof messageKey === 'string') this.keys.messageKey = messageKey
    if (typeof errorKey === 'string') this.keys.errorKey = errorKey
    if (levels && typeof levels.labels === 'object') this.keys.labels = levels.labels
  }

  start () {
    // Should either loop die (a bug), it is said with its stack; what it held is still counted.
    const died = (what) => (err) => this.write(`the ${what} failed: ${err?.stack ?? err}`)
    this.connecting = this._connectLoop().catch(died('connection loop'))
    this.pumping = this._pump().catch(died('publishing loop'))
  }

  /** One parsed pino record: mapped, encoded and buffered (or dropped and counted). Never throws. */
  offer (record) {
    if (this.closing) return this.drops.count('shutdown')
    let item
    try {
      const entry = toEntry(record, this.keys, `${this.idPrefix}-${++this.seq}`, this.now)
      item = encodeEntry(entry, this.options.mode)
      item.subject = this._subject(entry.source)
    } catch {
      return this.drops.count('invalid')
    }
    for (const reason of this.queue.push(item)) this.drops.count(reason)
    this._wakeUp()
  }

  /** A line pino wrote that is not a JSON record. */
  countInvalid () {
    this.drops.count('invalid')
  }

  get stats () {
    return { published: this.published, dropped: this.drops.total, byReason: { ...this.drops.byReason } }
  }

  _subject (source) {
    let subject = this.subjects.get(source)
    if (subject === undefined) {
      subject = subjectFor(source, this.options.subjectPrefix)
      if (this.subjects.size < 1024) this.subjects.set(source, subject)
    }
    return subject
  }

  _wakeUp () {
    this.wake.resolve()
  }

  /** Say something at most once per report interval per kind. */
  _warn (kind, line) {
    const last = this.warned.get(kind) ?? -Infinity
    if (this.now() - last < this.options.dropReportIntervalMs) return
    this.warned.set(kind, this.now())
    this.write(line)
  }

  /** Wait ms, or less if the transport stops first. */
  _pause (ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms)
      timer.unref()
      this.stop.promise.then(() => { clearTimeout(timer); resolve() })
    })
  }

  _connectOptions () {
    const o = this.options
    return {
      servers: o.servers,
      name: o.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: o.reconnectTimeWaitMs,
      ...o.auth
    }
  }

  /** Connect in the background (the logger never waits), trying again until closed; from then
   * on the client reconnects by itself. */
  async _connectLoop () {
    while (!this.stopped) {
      try {
        const nc = await this.connectFn(this._connectOptions())
        if (this.stopped) return await nc.close()
        this.nc = nc
        this.connected = true
        this._watch(nc)
        return this._wakeUp()
      } catch (err) {
        const where = this.options.servers.map(shownUrl).join(',')
        this._warn('connect', `cannot connect to ${where}: ${err.message}; trying again`)
        await this._pause(this.options.reconnectTimeWaitMs)
      }
    }
  }

  async _watch (nc) {
    try {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect') this.connected = false
        else if (status.type === 'reconnect') this._reconnected()
        else if (status.type === 'error') this._warn('error', `NATS error: ${status.error?.message ?? status.data}`)
      }
    } catch (err) {
      this._warn('status', `NATS status stream failed: ${err.message}`)
    }
  }

  _reconnected () {
    this.connected = true
    this._wakeUp()
  }
  /** Publish while connected: a chunk at a time, each confirmed by a flush (PING/PONG) before
   * the next, so what is in flight is bounded and counted in the buffer's limits. */
  async _pump () {
    while (!this.stopped) {
      if (this.connected && this.chunk.length === 0) this.chunk = this.queue.take(this.options.chunkEntries)
      if (!this.connected || this.chunk.length === 0) {
        this._checkIdle()
        this.wake = deferred()
        await Promise.race([this.wake.promise, this.stop.promise])
        continue
      }
      if (await this._send(this.chunk)) {
        this.queue.settle(this.chunk)
        this.published += this.chunk.length
        this.chunk = []
      }
    }
  }

  /** Publish a chunk and wait for the server to confirm it; false when the connection was
   * lost first (the chunk is sent again once reconnected: its entries may then arrive twice,
   * with the same logId). */
  async _send (chunk) {
    const nc = this.nc
    const kept = []
    for (const item of chunk) {
      try {
        nc.publish(item.subject, item.body, { headers: item.headers })
        kept.push(item)
      } catch (err) {
        if (!/max_payload/.test(err.message)) return this._lost(err)
        this.queue.settle([item])
        this.drops.count('payload_too_large')
      }
    }
    this.chunk = kept
    try {
      await Promise.race([nc.flush(), this.stop.promise.then(() => { throw new Error('stopped') })])
      return true
    } catch (err) {
      return this._lost(err)
    }
  }

  _lost (err) {
    if (this.stopped) return false
    this.connected = false
    this._warn('lost', `connection lost (${err.message}); entries wait for the reconnect`)
    // The client reconnects by itself; a flush that succeeds says it has.
    this._probe(this.nc)
    return false
  }

  _probe (nc) {
    if (this.stopped || nc.isClosed()) return
    // A flush waits for the next connection; should one fail at once, the next try waits a while.
    const again = () => this._pause(this.options.reconnectTimeWaitMs).then(() => this._probe(nc))
    nc.flush().then(() => this._reconnected(), again)
  }

  _checkIdle () {
    if (this.idle && this.queue.held === 0) this.idle.resolve()
  }

  /** Flush what is held, within closeTimeoutMs; what is left then is counted dropped (shutdown). */
  close () {
    if (!this.closed) this.closed = this._close()
    return this.closed
  }

  async _close () {
    const deadline = this.now() + this.options.closeTimeoutMs
    this.closing = true
    this.idle = deferred()
    this._checkIdle()
    const timeLeft = () => Math.max(0, deadline - this.now())
    await Promise.race([this.idle.promise, this._pause(timeLeft())])
    this.stopped = true
    this.stop.resolve()
    const left = this.queue.clear() + this.queue.taken
    if (left > 0) this.drops.count('shutdown', left, { quiet: true })
    const nc = this.nc
    if (nc && !nc.isClosed()) await Promise.race([nc.close().catch(() => {}), this._timeout(timeLeft())])
    this.drops.close(this.published)
  }

  _timeout (ms) {
    return new Promise((resolve) => setTimeout(resolve, ms).unref())
  }
}

module.exports = { NatsTransport, shownUrl, stderrLine }
