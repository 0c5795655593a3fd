/** The text form of a schedule (`pic compile --backend mpc` without -o or --json). */
import { round3 } from './cost.js'
import type { MpcSchedule } from './types.js'

function human(bytes: number): string {
  if (bytes >= 1 << 30) return `${round3(bytes / 2 ** 30)} GiB`
  if (bytes >= 1 << 20) return `${round3(bytes / 2 ** 20)} MiB`
  if (bytes >= 1 << 10) return `${round3(bytes / 2 ** 10)} KiB`
  return `${bytes} B`
}

/** Human-readable schedule: parameters, one line per layer, totals. */
export function printSchedule(s: MpcSchedule): string {
  const p = s.params
  const lines = [
    `mpc schedule for ${s.model} (fingerprint ${s.fingerprint})`,
    `ring ${p.ring}, ${p.fracBits} fractional bits (weights ${p.weightFracBits}), garbled inputs ${p.gcBits} bits, labels ${p.kappa} bits`,
    `truncation: ${p.truncation}`,
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
