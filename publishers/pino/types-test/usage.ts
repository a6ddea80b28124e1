// Compiled (never run) by test/types.test.js: the declarations serve a TypeScript service.
import pino from 'pino'
import pinoNats, { DEFAULTS, parseOptions, type PinoNatsOptions, type PinoNatsStats } from '..'

const options: PinoNatsOptions = {
  servers: ['nats://n1:4222', 'nats://n2:4222'],
  source: 'billing',
  mode: 'structured',
  overflow: 'drop_oldest',
  bufferEntries: 5000,
  closeTimeoutMs: 3000,
  credsFile: '/etc/nats/billing.creds',
  tls: { caFile: '/etc/nats/ca.pem' }
}
const transport = pino.transport<PinoNatsOptions>({ target: '@cortex-log-gateway/pino-nats', options })
const logger = pino(transport).child({ module: 'billing' })
logger.info({ orderId: 'o-17' }, 'charged')

const stats: PinoNatsStats = { published: 1, dropped: 0, byReason: {} }
const closeMs: number = DEFAULTS.closeTimeoutMs
const made: Promise<NodeJS.ReadWriteStream | object> = pinoNats({ source: 'x' })
parseOptions({ overflow: 'drop_newest' })
// @ts-expect-error: not a policy of this transport
const bad: PinoNatsOptions = { overflow: 'block' }
void [stats, closeMs, made, bad]
