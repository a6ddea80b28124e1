'use strict'
// The worker's bounded buffer: entries waiting and in flight, capped by count and bytes.

class BoundedQueue {
  /**
   * @param {{maxEntries: number, maxBytes: number, overflow: 'drop_newest'|'drop_oldest'}} limits
   */
  constructor (limits) {
    this.limits = limits
    this.items = []
    this.head = 0
    this.bytes = 0 // waiting and in flight
    this.taken = 0 // entries in flight (taken, not yet settled)
    this.takenBytes = 0
  }

  get waiting () {
    return this.items.length - this.head
  }

  get held () {
    return this.waiting + this.taken
  }

  /**
   * Add an item ({size}); when full, drop per the policy.
   * @returns {string[]} the reason of each entry dropped (empty when none was)
   */
  push (item) {
    const { maxEntries, maxBytes, overflow } = this.limits
    if (item.size > maxBytes) return ['payload_too_large']
    const dropped = []
    while (this.held >= maxEntries || this.bytes + item.size > maxBytes) {
      if (overflow !== 'drop_oldest' || this.waiting === 0) return [...dropped, 'overflow_newest']
      this.bytes -= this.shift().size
      dropped.push('overflow_oldest')
    }
    this.items.push(item)
    this.bytes += item.size
    return dropped
  }

  shift () {
    const item = this.items[this.head]
    this.items[this.head++] = undefined
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return item
  }

  /** Take up to maxEntries waiting items into flight (they still count against the limits). */
  take (maxEntries) {
    const chunk = []
    while (this.waiting > 0 && chunk.length < maxEntries) chunk.push(this.shift())
    this.taken += chunk.length
    for (const item of chunk) this.takenBytes += item.size
    return chunk
  }

  /** Items taken are done with (sent, or dropped): free their room. */
  settle (chunk) {
    let size = 0
    for (const item of chunk) size += item.size
    this.taken -= chunk.length
    this.takenBytes -= size
    this.bytes -= size
  }

  /** Remove everything waiting; returns how many entries that was. */
  clear () {
    const n = this.waiting
    this.items = []
    this.head = 0
    this.bytes = this.takenBytes
    return n
  }
}

module.exports = { BoundedQueue }
