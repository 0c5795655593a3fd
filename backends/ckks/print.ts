/** The readable text form of a CKKS plan: parameters, keys, layouts, statistics, then one line per instruction. */
import type { CkksPlan, Instr } from './plan.js'
import { gib } from './memory.js'

function mb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`
}

function chain(bits: readonly number[]): string {
  const parts: string[] = []
  for (let i = 0; i < bits.length; ) {
    let j = i
    while (j < bits.length && bits[j] === bits[i]) j++
    parts.push(j - i > 1 ? `${bits[i]}x${j - i}` : `${bits[i]}`)
    i = j
  }
  return parts.join(', ')
}

function line(i: Instr): string {
  const head = `L${i.level} 2^${Math.log2(i.scale).toFixed(2)}`.padEnd(14)
  const args = i.args.map((a) => `r${a}`).join(', ')
  let rhs = `${i.op} ${args}`
  if (i.step !== undefined) rhs += ` by ${i.step}`
  if (i.pt !== undefined) rhs += `, ${i.pt}${i.ptScale !== undefined ? ` @2^${Math.log2(i.ptScale).toFixed(2)}` : ''}`
  return `  ${head} r${i.dst} = ${rhs}${i.node ? `   # ${i.node}` : ''}`
}

/** Whether the plan runs without the key holder once the input is encrypted. */
export function interaction(plan: CkksPlan): string {
  const n = plan.stats.bootstraps
  return n === 0
    ? 'none: leveled, the server evaluates without the client'
    : `${n} client-aided refresh(es) per image (pic run --refresh client): each a round trip to the key holder, who ${
        plan.refreshMask ? `decrypts them masked (statistical distance 2^-${plan.refreshMask.sigma} per refresh${plan.refreshMask.distancePerInferenceLog2 !== undefined ? `, 2^${plan.refreshMask.distancePerInferenceLog2} per inference` : ''}; unmasked with --refresh-mask off)` : 'sees the values refreshed (the plan has no reserve for masking them)'
      }`
}

/** The range check: unchecked, or the bits of margin below the modulus at the tightest point. */
export function rangesLine(plan: CkksPlan): string {
  const r = plan.stats.ranges
  if (r === undefined || r === 'unchecked') return 'unchecked (compile with --calib C.npy to check every value against its level\'s modulus)'
  const t = r.tightest
  const at = t.node ? `${t.node} at level ${t.level}` : `level ${t.level}`
  const w = r.widened ? `; q0 widened ${r.widened.q0Bits.from} -> ${r.widened.q0Bits.to} bits` : ''
  return `checked on ${r.samples} calibration samples, margin ${r.margin}x: tightest ${at}, |y| <= ${t.bound} at scale 2^${t.scaleBits} leaves ${t.headroomBits?.toFixed(2)} bits below Q/2 (${r.noiseMarginBits} needed for noise); outputs |y| <= ${r.output.bound}, ${r.output.headroomBits?.toFixed(2)} bits${w}`
}

export function printPlan(plan: CkksPlan): string {
  const p = plan.params
  const s = plan.stats
  const out: string[] = []
  out.push(`ckks plan '${plan.model}'`)
  out.push(`params: N = ${2 ** p.logN} (logN ${p.logN}), ${p.slots} slots, primes [${chain(p.primes)}] = ${p.totalBits} bits (bound ${p.maxBits} at ${p.security}-bit security), scale 2^${p.logScale}`)
  out.push(`keys: ${plan.keys.relin ? 'relinearization + ' : ''}${plan.keys.rotations.length} rotation keys [${plan.keys.rotations.join(', ')}], about ${mb(s.keyBytes.total)} (${mb(s.keyBytes.perRotationKey)} each)`)
  const m = s.memory
  if (m)
    out.push(
      `memory: peak ${gib(m.peakBytes)} GiB of node-seal's ${gib(m.heapBytes)} GiB heap${m.peakLayer ? ` at ${m.peakLayer}` : ''}: keys ${gib(m.keyBytes)} GiB, ciphertexts ${gib(m.ciphertextBytes)} GiB (at most ${m.peakLiveCiphertexts} live), plaintexts ${gib(m.plaintextBytes)} GiB (${plan.plaintexts === 'on demand' ? 'encoded on demand' : 'resident'}), context and working memory ${gib(m.contextBytes)} GiB`,
    )
  out.push(`interaction: ${interaction(plan)}`)
  out.push(`batching: ${plan.batching}`)
  for (const i of plan.inputs) out.push(`input ${i.name} [${i.shape.join(',')}]: ${i.layout}; registers ${i.regs.map((r) => `r${r}`).join(', ')} encrypted at level(s) ${i.levels.join(', ')}, scale 2^${Math.log2(i.scale)}`)
  for (const o of plan.outputs) out.push(`output ${o.name} [${o.shape.join(',')}]: r${o.reg}, layout ${o.layout}`)
  out.push(`stats: depth ${s.networkDepth !== undefined && s.networkDepth !== s.depth ? `${s.networkDepth} (${s.depth} between refreshes)` : s.depth}, bootstraps ${s.bootstraps}, ${plan.instructions.length} instructions (${Object.entries(s.counts).map(([k, v]) => `${k} ${v}`).join(', ')})`)
  out.push(`estimated: evaluate ${s.estimatedTotalMs.toFixed(1)} ms (${Object.entries(s.estimatedMs).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}), encrypt ${s.estimatedEncryptMs.toFixed(1)} ms, decrypt ${s.estimatedDecryptMs.toFixed(1)} ms per image`)
  out.push(`ranges: ${rangesLine(plan)}`)
  for (const n of s.notes) out.push(`note: ${n}`)
  out.push('instructions:')
  for (const i of plan.instructions) out.push(line(i))
  return out.join('\n') + '\n'
}
