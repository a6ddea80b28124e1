'use strict'
// A LogEntryCreated as a CloudEvent over NATS (contracts/cloudevents.py): binary or structured mode.

const ENTRY_TYPE = 'cortex_logging.entry.created'
const JSON_TYPE = 'application/json'
const STRUCTURED_TYPE = 'application/cloudevents+json'
// Header values keep printable ASCII but '"' and '%'; the rest is percent-encoded UTF-8,
// exactly what contracts.cloudevents.encode_binary writes and decode reads.
const PLAIN = /^[\x21\x23\x24\x26-\x7e]*$/

function percentEncode (text) {
  if (PLAIN.test(text)) return text
  let out = ''
  for (const byte of Buffer.from(text, 'utf8')) {
    const keep = byte >= 0x21 && byte <= 0x7e && byte !== 0x22 && byte !== 0x25
    out += keep ? String.fromCharCode(byte) : '%' + byte.toString(16).toUpperCase().padStart(2, '0')
  }
  return out
}

/**
 * A NATS header block made once, as bytes: what the client's publish takes from its `headers`
 * option is `encode()` alone (nats-core 3.3, pinned in package.json; test/units.test.js holds it
 * to the client's own MsgHdrs, byte for byte). Building a MsgHdrs per entry (canonical key
 * checks, a Map, then the same text) cost several times the rest of the encoding.
 */
class HeaderBlock {
  constructor (pairs) {
    this.pairs = pairs
    let text = 'NATS/1.0'
    for (const [name, value] of pairs) text += `\r\n${name}: ${value}`
    this.bytes = Buffer.from(text + '\r\n\r\n', 'latin1') // values are ASCII: percent-encoded
  }

  encode () {
    return this.bytes
  }

  get (name) {
    const pair = this.pairs.find(([key]) => key === name)
    return pair ? pair[1] : ''
  }
}

/** The event's context attributes: its id is the entry's logId, its time the entry's createdAt. */
function attributes (entry) {
  return {
    specversion: '1.0',
    id: entry.logId,
    source: '//' + entry.source,
    type: ENTRY_TYPE,
    time: entry.createdAt
  }
}

/**
 * Encode an entry as a NATS message.
 * @param {object} entry LogEntryCreated data
 * @param {'binary'|'structured'} mode
 * @returns {{headers: object, body: Buffer, size: number}} size: body plus header bytes
 */
function encodeEntry (entry, mode) {
  const attrs = attributes(entry)
  let headers
  let body
  if (mode === 'structured') {
    headers = new HeaderBlock([['content-type', STRUCTURED_TYPE]])
    body = Buffer.from(JSON.stringify({ ...attrs, datacontenttype: JSON_TYPE, data: entry }))
  } else {
    const pairs = [['content-type', JSON_TYPE]]
    for (const [name, value] of Object.entries(attrs)) pairs.push(['ce-' + name, percentEncode(value)])
    headers = new HeaderBlock(pairs)
    body = Buffer.from(JSON.stringify(entry))
  }
  return { headers, body, size: body.length + headers.bytes.length }
}

/** The subject of a source: the entry subject, the source made one safe token, an optional prefix. */
function subjectFor (source, prefix) {
  const token = source.replace(/[^A-Za-z0-9_-]/g, '_')
  return (prefix ? prefix + '.' : '') + ENTRY_TYPE + '.' + token
}

module.exports = { ENTRY_TYPE, HeaderBlock, encodeEntry, percentEncode, subjectFor }
