/** The text form of a schedule (`pic compile --backend mpc` without -o or --json). */
import { round3 } from './cost.js'
import type { MpcSchedule } from './types.js'

function human(bytes: number): string {
  if (bytes >= 1 << 30) return `${round3(bytes / 2 ** 30)} GiB`
  if (bytes >= 1 << 20) return `${round3(bytes / 2 ** 20)} MiB`
  if (bytes >= 1 << 10) return `${round3(bytes / 2 ** 10)} KiB`
  return `${bytes} B`
}

const pow2 = (x: number) => `2^${Math.log2(x).toFixed(1)}`

/** The truncation failure probability per inference, with what its bounds rest on. */
function truncationLine(s: MpcSchedule): string {
  const t = s.truncation
  const p = t.failureProbabilityPerInference
  const what = t.bounds === 'calibrated' ? 'calibrated bounds' : `bounds assumed |x| < 2^${s.params.gcBits - 1} ring units (no calibration)`
  if (p === 0) return `0 (no truncated element; ${what})`
  return `${p.toExponential(2)} = 2^${t.log2!.toFixed(1)} over ${t.truncatedElements} truncated elements, worst ${t.worstNode} (${what}; accepted ${pow2(t.limit)})`
}

/** The range check: unchecked, or the tightest value against its headroom. */
function rangesLine(s: MpcSchedule): string {
  const r = s.ranges
  if (r === 'unchecked') return 'unchecked (compile with --calib C.npy to check every value against the fixed-point headroom)'
  const t = r.tightest
  const widened = r.widened ? `; intBits widened ${r.widened.intBits.from} -> ${r.widened.intBits.to} for ${r.widened.node}` : ''
  return `checked on ${r.samples} calibration samples, margin ${r.margin}x, ${r.values.length} values${t ? `; tightest ${t.node} (${t.what}) |x| <= ${t.bound} of ${pow2(t.headroom)}, ${t.spareBits.toFixed(1)} bits spare` : ''}${widened}`
}

/** Human-readable schedule: parameters, one line per layer, totals. */
export function printSchedule(s: MpcSchedule): string {
  const p = s.params
  const lines = [
    `mpc schedule for ${s.model} (fingerprint ${s.fingerprint})`,
    `ring ${p.ring}, ${p.fracBits} fractional bits (weights ${p.weightFracBits}), garbled inputs ${p.gcBits} bits, labels ${p.kappa} bits`,
    `truncation: ${p.truncation}`,
    `truncation failure per inference: ${truncationLine(s)}`,
    `ranges: ${rangesLine(s)}`,
    `trust: ${s.trust}`,
    '',
    `${'layer'.padEnd(28)} ${'op'.padEnd(18)} ${'relus'.padStart(7)} ${'cmp'.padStart(6)} ${'triples'.padStart(7)} ${'ANDs'.padStart(9)} ${'rounds'.padStart(6)} ${'online'.padStart(11)} ${'offline'.padStart(11)}`,
  ]
  for (const r of s.layers)
    lines.push(
      `${r.name.slice(0, 28).padEnd(28)} ${r.op.slice(0, 18).padEnd(18)} ${String(r.reluCount).padStart(7)} ${String(r.comparisons).padStart(6)} ${String(r.triples).padStart(7)} ${String(r.andGates).padStart(9)} ${String(r.rounds).padStart(6)} ${human(r.bytes.online).padStart(11)} ${human(r.bytes.offline).padStart(11)}`,
    )
  lines.push(
    '',
    `per inference: ${s.reluCount} garbled ReLUs, ${s.comparisons} garbled comparisons, ${s.triples} Beaver squares, ${s.rounds} rounds, online ${human(s.bytes.online)}, offline ${human(s.bytes.offline)}`,
    `online latency: ${Object.entries(s.latencyMs).map(([k, v]) => `${k} ${v} ms`).join(', ')}`,
  )
  return lines.join('\n')
}
