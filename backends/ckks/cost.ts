/**
 * The CKKS cost model: per-op node-seal latency by ring degree and number of primes, read from the
 * table bench/ckks-ops.ts measures on this machine (backends/ckks/op-costs.json), interpolated
 * linearly in the prime count.
 */
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import { polyEvalDepth } from './lower.js'

export type CostOp =
  | 'rotate'
  | 'relin'
  | 'mulPlain'
  | 'addPlain'
  | 'mul'
  | 'square'
  | 'rescale'
  | 'add'
  | 'modswitch'
  | 'negate'
  | 'encode'
  | 'encrypt'
  | 'decrypt'
  | 'decode'

export interface CostTable {
  machine: string
  measured: string
  /** logN -> op -> points (prime count, ms). */
  ops: Record<string, Partial<Record<CostOp, { primes: number[]; ms: number[] }>>>
}

const here = dirname(fileURLToPath(import.meta.url))

/** Where the measured table lives (source tree; also found from the compiled dist/ tree). */
export function costTablePath(): string {
  const candidates = [join(here, 'op-costs.json'), join(here, '..', '..', '..', 'backends', 'ckks', 'op-costs.json')]
  return candidates.find((p) => existsSync(p)) ?? candidates[0]
}

let cached: CostTable | undefined

export function loadCostTable(): CostTable {
  if (cached) return cached
  const p = costTablePath()
  if (!existsSync(p)) throw new Error(`CKKS cost table missing: ${p} (run bench/ckks-ops.ts)`)
  cached = JSON.parse(readFileSync(p, 'utf8')) as CostTable
  return cached
}

/** Milliseconds for one op at ring degree 2^logN on a ciphertext with `primes` data primes. */
export function opCost(op: CostOp, logN: number, primes: number, table: CostTable = loadCostTable()): number {
  const byN = table.ops[String(logN)]
  const e = byN?.[op]
  if (!e || e.primes.length === 0) return 0
  const xs = e.primes
  const ys = e.ms
  if (xs.length === 1) return ys[0] * (primes / xs[0])
  let i = 0
  while (i < xs.length - 2 && primes > xs[i + 1]) i++
  const t = (primes - xs[i]) / (xs[i + 1] - xs[i])
  return Math.max(0, ys[i] + t * (ys[i + 1] - ys[i]))
}

/**
 * Multiplicative depth of a degree-d activation as this backend evaluates it. OLA's fits come in
 * the Chebyshev basis, so high degrees take the Chebyshev recurrence (see polyEvalDepth).
 */
export function ckksPolyDepth(d: number): number {
  return polyEvalDepth(d, true)
}

/**
 * A cost model for the OLA pass (passes/ola.ts's CostModel shape): milliseconds to evaluate a
 * degree-d polynomial on `elements` values with this backend's evaluation (powers by squaring, one
 * coefficient product per power), plus, per level used, one relinearization-sized charge for the
 * longer chain every other op then pays. Measured table at ring degree 2^logN.
 */
export function ckksOlaCostModel(logN = 14, primes = 6): { name: string; activation(degree: number, elements: number): number } {
  const slots = 2 ** (logN - 1)
  const c = (op: CostOp) => opCost(op, logN, primes)
  return {
    name: `ckks-ms(logN ${logN})`,
    activation(d: number, elements: number): number {
      const cts = Math.ceil(elements / slots)
      const nonScalar = d <= 1 ? 0 : d - 1
      const perCt = nonScalar * (c('mul') + c('relin') + c('rescale')) + (d >= 3 ? d * c('mulPlain') + c('rescale') : 0)
      return cts * perCt + ckksPolyDepth(d) * c('relin')
    },
  }
}
