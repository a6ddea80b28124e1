import type { Transform } from 'node:stream'

/** Options of the pino NATS transport (`pino.transport({ target, options })`). */
export interface PinoNatsOptions {
  /** NATS server URL(s): one URL, a comma-separated list or an array. Default nats://127.0.0.1:4222. */
  servers?: string | string[]
  /** The entry's source when a record has no `module` binding. Default "unknown". */
  source?: string
  /** CloudEvents content mode. Default "binary" (ce- headers, the entry as the body). */
  mode?: 'binary' | 'structured'
  /** Put in front of every subject, as the gateway's --subject-prefix. Default none. */
  subjectPrefix?: string
  /** Most entries held in the worker (waiting and in flight). Default 10000. */
  bufferEntries?: number
  /** Most bytes held in the worker (encoded messages). Default 16 MiB. */
  bufferBytes?: number
  /** When the buffer is full: drop the new entry or the oldest waiting one. Default "drop_newest". */
  overflow?: 'drop_newest' | 'drop_oldest'
  /** Most entries published before waiting for the server's confirmation. Default 256. */
  chunkEntries?: number
  /** Most time close (and so process exit) spends flushing, at most 9000. Default 5000. */
  closeTimeoutMs?: number
  /** Drops (and connection trouble) are written to stderr at most once per this. Default 5000. */
  dropReportIntervalMs?: number
  /** Wait between connection attempts. Default 500. */
  reconnectTimeWaitMs?: number
  /** The NATS connection's name. Default "cortex-pino-nats". */
  name?: string
  /** Token authentication. */
  token?: string
  /** User for user/password authentication (with `password`). */
  user?: string
  password?: string
  /** A credentials file (user JWT and NKEY seed), as nsc writes it. */
  credsFile?: string
  /** TLS: files (or PEM text) of the CA that verifies the server and of a client certificate. */
  tls?: {
    caFile?: string
    ca?: string
    certFile?: string
    cert?: string
    keyFile?: string
    key?: string
    handshakeFirst?: boolean
  }
}

/** What the transport counted: entries confirmed by the server, and dropped ones by reason. */
export interface PinoNatsStats {
  published: number
  dropped: number
  byReason: Record<string, number>
}

/** The transport's entry point, called by pino in its worker thread. */
declare function pinoNats (options?: PinoNatsOptions): Promise<Transform>

export declare const DEFAULTS: Readonly<Required<Omit<PinoNatsOptions,
  'token' | 'user' | 'password' | 'credsFile' | 'tls'>>>

export declare function parseOptions (options?: PinoNatsOptions): object

export { pinoNats }
export default pinoNats
