/**
 * The README's API scripts are examples/ckks.mjs and examples/mpc.mjs verbatim, and they run from
 * this repository (importing the package by its name, which resolves to the built dist/ through the
 * package's own `exports`) with the accuracy the float64 interpreter gets on the same images: the
 * logits' errors (CKKS noise, MPC fixed point) are far below half the smallest top-two gap.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT } from '../helpers.js'
import { plainOracle } from './oracle.js'
import { spawnSync } from 'node:child_process'

const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8')
const run = (file: string) => spawnSync(process.execPath, [path.join(ROOT, 'examples', file)], { encoding: 'utf8', cwd: ROOT, timeout: 300_000 })

describe('API examples', () => {
  const oracle = plainOracle()

  it('the README shows the example scripts verbatim', () => {
    for (const f of ['ckks.mjs', 'mpc.mjs']) expect(readme).toContain('```js\n' + readFileSync(path.join(ROOT, 'examples', f), 'utf8') + '```')
  })

  it('the float64 model separates its classes clearly on these images', () => {
    expect(oracle.images).toBe(16)
    expect(oracle.minGap).toBeGreaterThan(0.1)
  })

  it('examples/ckks.mjs compiles, runs encrypted and prints the plaintext accuracy', () => {
    const r = run('ckks.mjs')
    expect(r.status, r.stderr).toBe(0)
    const pct = ((100 * oracle.correct) / oracle.images).toFixed(1)
    expect(r.stdout).toMatch(new RegExp(`^CKKS logN 1[1-5]: ${oracle.correct}/${oracle.images} correct \\(${pct.replace('.', '\\.')}%\\), \\d+ ms per image\n$`))
  })

  it('examples/mpc.mjs runs server and client in one process (no dealer) and prints the plaintext accuracy', () => {
    const r = run('mpc.mjs')
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`^MPC: ${oracle.correct}/${oracle.images} correct, \\d+ B online per image, \\d+ ms per image\n$`))
  })
})
