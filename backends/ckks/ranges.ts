/**
 * Value ranges against the modulus (issue 12, item 7). A ciphertext at level l holds the plaintext
 * polynomial m + e modulo Q_l = q_0 q_1 .. q_l; its coefficients are at most max |slot| * scale in
 * magnitude (m = scale * the inverse canonical embedding of the slots: each coefficient is 2/N times
 * a sum of N/2 slot values of modulus one), so the values decrypt correctly while
 * max |slot| * scale + |e| < Q_l / 2. Past it they wrap modulo Q_l and decrypt as garbage, in every
 * slot (the coefficients mix them). At level 0 this is |y| * scale < q0 / 2: with q0 = scale * 2^10
 * (params.ts's default headroom), |y| < 512 in every slot of every output register.
 *
 * The check: every instruction's result, all slots (unused slots hold partial sums that can exceed
 * the outputs), on the calibration images run through the plan without encryption (simulate.ts),
 * max |slot| times a margin (default 2) is the bound; it must leave NOISE_MARGIN_BITS bits below
 * Q_l / 2 for the noise (the noise after a rescale is a few thousand coefficient units, against
 * Q_0 / 4 >= 2^34 for q0 of at least 36 bits: one bit is ample). A plan short of that is recompiled
 * with q0 larger by the missing bits (params.ts's `headroom`; more total modulus, maybe a larger
 * ring) unless the caller fixed the headroom or q0 would pass SEAL's 60 bits, then refused in one
 * line naming the layer. The plan records the bits of margin at the tightest point, and over the
 * output slots alone (stats.ranges). Without calibration: `ranges: 'unchecked'` and a warning.
 * At most RANGE_SAMPLES calibration images are simulated, fewer for large plans (RANGE_WORK).
 */
import { describeNode, type Graph } from '../../ir/graph.js'
import type { Tensor } from '../../ir/tensor.js'
import { CkksCompileError, compileCkks, type CompileOptions } from './compile.js'
import { constIndex, type CkksPlan, type CkksRangeReport } from './plan.js'
import { simulateWithSlots } from './simulate.js'

export const DEFAULT_RANGE_MARGIN = 2
export const NOISE_MARGIN_BITS = 1
/**
 * Calibration images simulated for the check: all of them up to RANGE_SAMPLES, fewer when the plan
 * is large (the simulator costs about 40 ns per slot and instruction here: RANGE_WORK slot
 * operations, some 8 s, buy cnn_square's 300), never fewer than MIN_RANGE_SAMPLES.
 */
export const RANGE_SAMPLES = 300
export const MIN_RANGE_SAMPLES = 8
export const RANGE_WORK = 2e8

interface Point {
  node?: string
  level: number
  scale: number
  /** max |slot| observed. */
  observed: number
}

/** log2 of Q_l / 2 for every level. */
function halfModulusBits(plan: CkksPlan): number[] {
  const out: number[] = []
  let acc = -1
  for (const q of plan.params.primeValues.slice(0, -1)) {
    acc += Math.log2(Number(q))
    out.push(acc)
  }
  return out
}

/** Per register: the largest |slot| any calibration inference gives it, with its level and scale. */
function measure(plan: CkksPlan, calib: Tensor): { points: Map<number, Point>; outputMax: number; samples: number } {
  const work = Math.max(1, plan.instructions.length * plan.params.slots)
  const n = Math.min(calib.shape[0], RANGE_SAMPLES, Math.max(MIN_RANGE_SAMPLES, Math.floor(RANGE_WORK / work)))
  const per = calib.data.length / calib.shape[0]
  const x: Tensor = { dtype: calib.dtype, shape: [n, ...calib.shape.slice(1)], data: calib.data.subarray(0, n * per) }
  const points = new Map<number, Point>()
  const maxOf = (v: Float64Array) => {
    let m = 0
    for (let s = 0; s < v.length; s++) {
      const a = Math.abs(v[s])
      if (!(a <= m)) m = a
    }
    return m
  }
  const { slots } = simulateWithSlots(plan, x, (i, v) => {
    const m = maxOf(v)
    const p = points.get(i.dst)
    if (!p) points.set(i.dst, { node: i.node, level: i.level, scale: i.scale, observed: m })
    else if (m > p.observed) p.observed = m
  })
  // the input registers as the client encrypts them: the images themselves in the slots
  const inp = plan.inputs[0]
  let inMax = 0
  for (let i = 0; i < x.data.length; i++) inMax = Math.max(inMax, Math.abs(x.data[i]))
  inp.regs.forEach((r, j) => points.set(r, { node: inp.name, level: inp.levels[j], scale: inp.scale, observed: inMax }))
  let outputMax = 0
  plan.outputs.forEach((o, k) => {
    const idx = constIndex(plan.constants[o.slots])
    for (const inf of slots) for (const s of idx) outputMax = Math.max(outputMax, Math.abs(inf[k][s]))
  })
  return { points, outputMax, samples: n }
}

interface Checked {
  report: CkksRangeReport
  /** Bits missing at the tightest point (<= 0: the plan holds). */
  deficit: number
  where: string
  tight: Point & { bound: number; bits: number }
}

function check(plan: CkksPlan, g: Graph | undefined, calib: Tensor, margin: number): Checked {
  const half = halfModulusBits(plan)
  const { points, outputMax, samples } = measure(plan, calib)
  let tight: (Point & { bound: number; bits: number }) | undefined
  for (const p of points.values()) {
    if (p.observed === 0) continue
    const bound = margin * p.observed
    const bits = half[p.level] - Math.log2(bound * p.scale)
    if (!tight || bits < tight.bits) tight = { ...p, bound, bits }
  }
  if (!tight) tight = { level: 0, scale: plan.inputs[0].scale, observed: 0, bound: 0, bits: Infinity }
  const outLevel = 0
  const outScale = plan.instructions.find((i) => i.dst === plan.outputs[0].reg)?.scale ?? plan.inputs[0].scale
  const outBound = margin * outputMax
  const outBits = outBound > 0 ? half[outLevel] - Math.log2(outBound * outScale) : Infinity
  const round = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(6)) : null)
  const n = tight.node && g?.nodes.find((v) => v.name === tight!.node)
  const where = n ? describeNode(n) : tight.node ? `node '${tight.node}'` : 'the input'
  return {
    report: {
      source: 'calibration',
      samples,
      margin,
      noiseMarginBits: NOISE_MARGIN_BITS,
      tightest: { node: tight.node ?? null, level: tight.level, bound: round(tight.bound), scaleBits: round(Math.log2(tight.scale)), modulusBits: round(half[tight.level] + 1), headroomBits: round(tight.bits) },
      output: { bound: round(outBound), headroomBits: round(outBits) },
    },
    deficit: NOISE_MARGIN_BITS - tight.bits,
    where,
    tight,
  }
}

/**
 * The plan checked against its modulus on the calibration data (recompiled with a larger q0 when
 * short), with `stats.ranges` set; without calibration, `ranges: 'unchecked'` and a warning on `log`.
 */
export function checkPlanRanges(
  g: Graph, plan: CkksPlan, opts: CompileOptions, calib: Tensor | undefined, margin = DEFAULT_RANGE_MARGIN, log: (m: string) => void = () => {},
): CkksPlan {
  if (!calib) {
    log('warning: no calibration data (--calib C.npy): value ranges are not checked against the CKKS modulus (ranges: unchecked)')
    plan.stats.ranges = 'unchecked'
    return plan
  }
  if (!(margin >= 1 && Number.isFinite(margin))) throw new CkksCompileError(`the range margin must be a number >= 1, got ${margin}`)
  const c = check(plan, g, calib, margin)
  if (c.deficit <= 0) {
    plan.stats.ranges = c.report
    return plan
  }
  const q0 = plan.params.primes[0]
  const missing = Math.ceil(c.deficit)
  const say = (what: string) =>
    `${c.where}: |y| <= ${c.tight.bound.toPrecision(3)} (calibrated max ${c.tight.observed.toPrecision(3)} times the margin ${margin}) at level ${c.tight.level}, scale 2^${Math.log2(c.tight.scale).toFixed(1)}, leaves ${c.tight.bits.toFixed(1)} bits below Q_${c.tight.level} / 2, ${NOISE_MARGIN_BITS} needed for noise: ${what}`
  if (opts.headroom !== undefined) throw new CkksCompileError(say(`the values would wrap (q0 headroom ${opts.headroom} bits fixed by the caller)`))
  const headroom = q0 - plan.params.logScale + missing
  if (plan.params.logScale + headroom > 60) throw new CkksCompileError(say(`the values would wrap (q0 would need ${q0 + missing} bits, SEAL's primes have at most 60)`))
  log(`ckks: ${c.where} needs ${missing} more bit(s) of modulus: q0 widened from ${q0} to ${q0 + missing} bits`)
  const wider = compileCkks(g, { ...opts, headroom })
  const c2 = check(wider, g, calib, margin)
  if (c2.deficit > 0) throw new CkksCompileError(say(`the values would wrap even with q0 of ${wider.params.primes[0]} bits`))
  wider.stats.ranges = { ...c2.report, widened: { q0Bits: { from: q0, to: wider.params.primes[0] } } }
  return wider
}
