'use strict'
// The .d.ts declarations compile for a TypeScript service (tsc --strict, nothing emitted).

const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const { test } = require('node:test')

test('the type declarations serve a strict TypeScript service', () => {
  const root = path.join(__dirname, '..')
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const args = [tsc, '--noEmit', '--strict', '--skipLibCheck', '--esModuleInterop', '--module', 'nodenext',
    '--moduleResolution', 'nodenext', '--types', 'node', path.join(root, 'types-test', 'usage.ts')]
  const done = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', timeout: 60000 })
  assert.equal(done.status, 0, done.stdout + done.stderr)
})
