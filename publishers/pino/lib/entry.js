'use strict'
// A pino record -> the data of a LogEntryCreated (contracts/models.py), pure.

const LABELS = {
  trace: 'debug',
  debug: 'debug',
  info: 'info',
  warn: 'warn',
  warning: 'warn',
  error: 'error',
  fatal: 'fatal'
}
// Fields the entry has at its top level: lifted out of the record when they are text.
const TOP_LEVEL = ['component', 'userId', 'sessionId']
const TRACE_KEYS = { traceId: 'traceId', trace_id: 'traceId', spanId: 'spanId', span_id: 'spanId' }
const MAX_MS = 253402300799999 // 9999-12-31T23:59:59.999Z: the last time with a four-digit year

/** The platform's level for a pino level: a number (by pino's bands) or a label. */
function levelName (level, labels) {
  if (typeof level === 'number') {
    const named = labels && LABELS[labels[level]]
    if (named) return named
    if (level < 30) return 'debug'
    if (level < 40) return 'info'
    if (level < 50) return 'warn'
    return level < 60 ? 'error' : 'fatal'
  }
  return typeof level === 'string' ? LABELS[level.toLowerCase()] : undefined
}

/** pino's `time` (epoch ms, epoch seconds from stdTimeFunctions.unixTime, or ISO text) in the
 * platform's form (2025-10-13T08:00:00.000Z), or undefined when it is none of those. */
function createdAt (time) {
  let ms
  if (typeof time === 'number' && Number.isFinite(time)) {
    ms = time < 1e11 ? time * 1000 : time
  } else if (typeof time === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(time)) {
    ms = Date.parse(time)
  }
  if (ms === undefined || Number.isNaN(ms) || ms < 0 || ms > MAX_MS) return undefined
  return new Date(ms).toISOString()
}

/** metadata.exception from pino's serialized error: type, message, stack, then its other fields. */
function exception (err) {
  const { type, message, stack, ...rest } = err
  return {
    type: typeof type === 'string' ? type : 'Error',
    message: typeof message === 'string' ? message : String(message ?? ''),
    stack: typeof stack === 'string' ? stack : '',
    ...rest
  }
}

function messageText (value) {
  if (value === undefined || value === null) return ''
  return typeof value === 'string' ? value : JSON.stringify(value)
}

/** The entry's source: the record's `module` binding, else the `source` option. */
function sourceOf (record, fallback) {
  const module = record.module
  return typeof module === 'string' && module !== '' ? module : fallback
}

/**
 * The LogEntryCreated data for one parsed pino record.
 * @param {object} record the record as pino wrote it (parsed JSON)
 * @param {{source: string, messageKey: string, errorKey: string, labels?: object}} keys
 * @param {string} logId a unique id for the entry
 * @param {() => number} now the clock, for a record without a usable `time`
 */
function toEntry (record, keys, logId, now = Date.now) {
  const metadata = Object.create(null) // a record's "__proto__" key stays a key
  const level = levelName(record.level, keys.labels)
  const created = createdAt(record.time)
  const entry = {
    logId,
    level: level ?? 'info',
    message: messageText(record[keys.messageKey]),
    source: sourceOf(record, keys.source),
    createdAt: created ?? new Date(now()).toISOString()
  }
  const skip = new Set([keys.messageKey, keys.errorKey, 'module'])
  if (level !== undefined) skip.add('level')
  if (created !== undefined) skip.add('time')
  for (const key of Object.keys(record)) {
    if (!skip.has(key)) metadata[key] = record[key]
  }
  lift(entry, metadata)
  const err = record[keys.errorKey]
  if (err !== null && typeof err === 'object' && !Array.isArray(err)) metadata.exception = exception(err)
  else if (err !== undefined) metadata[keys.errorKey] = err
  entry.metadata = metadata
  return entry
}

/** Move the top-level fields and the trace ids from metadata into the entry. */
function lift (entry, metadata) {
  for (const key of TOP_LEVEL) {
    if (typeof metadata[key] === 'string') {
      entry[key] = metadata[key]
      delete metadata[key]
    }
  }
  for (const [key, name] of Object.entries(TRACE_KEYS)) {
    if (typeof metadata[key] === 'string' && entry[name] === undefined) {
      entry[name] = metadata[key]
      delete metadata[key]
    }
  }
}

module.exports = { createdAt, levelName, toEntry }
