'use strict'
// pino.transport({ target: '@cortex-log-gateway/pino-nats', options }): runs in pino's worker
// thread and publishes each record as a LogEntryCreated CloudEvent on
// cortex_logging.entry.created.<source>, for cortex-log-gateway to batch.

const { workerData } = require('node:worker_threads')
const build = require('pino-abstract-transport')
const { DEFAULTS, parseOptions } = require('./lib/options')
const { NatsTransport } = require('./lib/transport')

/**
 * The transport's entry point, called by pino in its worker thread.
 * @param {import('./index').PinoNatsOptions} [options]
 */
async function pinoNats (options) {
  const transport = new NatsTransport(parseOptions(options))
  transport.start()
  // pino tells its transports the logger's messageKey, errorKey and levels (pino >= 9 does).
  const willSendConfig = workerData?.workerData?.pinoWillSendConfig === true
  return build(
    (source) => {
      transport.configure(source)
      source.on('data', (record) => transport.offer(record))
      source.on('unknown', () => transport.countInvalid())
    },
    { close: () => transport.close(), expectPinoConfig: willSendConfig }
  )
}

module.exports = pinoNats
module.exports.default = pinoNats
module.exports.pinoNats = pinoNats
module.exports.DEFAULTS = DEFAULTS
module.exports.NatsTransport = NatsTransport
module.exports.parseOptions = parseOptions
