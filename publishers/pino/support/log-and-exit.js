'use strict'
// A service that logs N records and exits at once (process.exit), as a CLI or a job does.
// Prints how long the N logger.info calls took, as JSON on stdout.

const pino = require('pino')
const { TARGET } = require('./helpers')

const n = Number(process.env.LOG_COUNT)
const options = JSON.parse(process.env.TRANSPORT_OPTIONS)
const logger = pino(pino.transport({ target: TARGET, options })).child({ module: 'pino-exit' })
const started = process.hrtime.bigint()
for (let i = 0; i < n; i++) logger.info({ run: process.env.RUN, n: i }, `exit ${i}`)
const loggingMs = Number(process.hrtime.bigint() - started) / 1e6
process.stdout.write(JSON.stringify({ loggingMs }) + '\n')
process.exit(0)
