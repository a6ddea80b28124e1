'use strict'
// Counts of dropped entries by reason, logged at most once per interval and reported on close.

class DropCounter {
  /**
   * @param {{intervalMs: number, write: (line: string) => void, now?: () => number}} opts
   */
  constructor ({ intervalMs, write, now = Date.now }) {
    this.intervalMs = intervalMs
    this.write = write
    this.now = now
    this.total = 0
    this.byReason = {}
    this.pending = {} // dropped since the last line
    this.lastLine = -Infinity
    this.timer = undefined
  }

  /** Count n entries dropped for reason; quiet: only the closing line will tell. */
  count (reason, n = 1, { quiet = false } = {}) {
    if (n <= 0) return
    this.total += n
    this.byReason[reason] = (this.byReason[reason] ?? 0) + n
    if (quiet) return
    this.pending[reason] = (this.pending[reason] ?? 0) + n
    const wait = this.lastLine + this.intervalMs - this.now()
    if (wait <= 0) this.report()
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.report(), wait)
      this.timer.unref()
    }
  }

  /** Write the drops since the last line, if any. */
  report () {
    clearTimeout(this.timer)
    this.timer = undefined
    const n = Object.values(this.pending).reduce((a, b) => a + b, 0)
    if (n === 0) return
    this.write(`dropped ${n} entries (${describe(this.pending)}); ${this.total} since start`)
    this.pending = {}
    this.lastLine = this.now()
  }

  /** The closing line: what was published and, if anything, what was dropped. */
  close (published) {
    clearTimeout(this.timer)
    this.timer = undefined
    this.pending = {}
    if (this.total === 0) return
    this.write(`closed: published ${published}, dropped ${this.total} (${describe(this.byReason)})`)
  }
}

function describe (counts) {
  return Object.entries(counts).map(([reason, n]) => `${reason}: ${n}`).join(', ')
}

module.exports = { DropCounter }
